"""YOLO-Pose loss: CIoU (boxes), 1 - OKS (keypoints), BCE (objectness, class, keypoint confidence)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from edgepose.train.assign import build_targets
from edgepose.train.options import LossWeights

LOSS_NAMES = ("box", "obj", "cls", "kpt", "kconf", "kl1")
# Per-level weight of the objectness loss: small grids see few cells, so their loss is scaled up (YOLOv5).
BALANCE = {3: (4.0, 1.0, 0.4), 4: (4.0, 1.0, 0.25, 0.06)}


def bbox_ciou(box1: Tensor, box2: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU of paired boxes (n, 4) cx, cy, w, h -> (n,); 1 for identical boxes."""
    (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.unbind(-1), box2.unbind(-1)
    b1x1, b1x2, b1y1, b1y2 = x1 - w1 / 2, x1 + w1 / 2, y1 - h1 / 2, y1 + h1 / 2
    b2x1, b2x2, b2y1, b2y2 = x2 - w2 / 2, x2 + w2 / 2, y2 - h2 / 2, y2 + h2 / 2
    inter = (torch.min(b1x2, b2x2) - torch.max(b1x1, b2x1)).clamp(0) * (
        torch.min(b1y2, b2y2) - torch.max(b1y1, b2y1)
    ).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = torch.max(b1x2, b2x2) - torch.min(b1x1, b2x1)
    ch = torch.max(b1y2, b2y2) - torch.min(b1y1, b2y1)
    c2 = cw**2 + ch**2 + eps  # squared diagonal of the enclosing box
    rho2 = (x2 - x1) ** 2 + (y2 - y1) ** 2  # squared centre distance
    v = (4 / math.pi**2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))) ** 2
    with torch.no_grad():
        # clamp: float rounding can put iou a hair above 1 for a perfect box, making this 0 / 0
        alpha = v / (v - iou + (1 + eps)).clamp(min=eps)
    return iou - (rho2 / c2 + v * alpha)


def oks_loss(pred_xy: Tensor, target: Tensor, area: Tensor, sigmas: Tensor, eps: float = 1e-9) -> Tensor:
    """Mean 1 - OKS over labelled keypoints. pred_xy (n, K, 2), target (n, K, 3) x, y, v, area (n,).

    OKS per keypoint as COCO: exp(-d^2 / (2 s^2 k^2)), k = 2 sigma, s^2 = the target box area.
    """
    labelled = (target[..., 2] > 0).to(pred_xy.dtype)  # (n, K)
    d2 = ((pred_xy - target[..., :2]) ** 2).sum(-1)  # (n, K)
    e = d2 / (2 * area[:, None] * (2 * sigmas) ** 2 + eps)
    return ((1 - torch.exp(-e)) * labelled).sum() / labelled.sum().clamp(min=1)


def kpt_l1_loss(pred_xy: Tensor, target: Tensor, area: Tensor, eps: float = 1e-9) -> Tensor:
    """Mean L1 distance of labelled keypoints, in units of the target's sqrt(box area)."""
    labelled = (target[..., 2] > 0).to(pred_xy.dtype)  # (n, K)
    d = (pred_xy - target[..., :2]).abs().sum(-1) / (area[:, None].sqrt() + eps)  # (n, K)
    return (d * labelled).sum() / labelled.sum().clamp(min=1)


class PoseLoss(nn.Module):
    """Total loss for raw maps [(B, A, H, W, 6 + 3K)] and collated targets (nt, 6 + 3K) in input pixels.

    Returns (loss * batch size, as YOLOv5, for SGD at lr 0.01; detached terms (6,) in LOSS_NAMES order).
    """

    def __init__(
        self,
        anchors: Tensor,
        strides: Sequence[int],
        sigmas: Sequence[float],
        weights: LossWeights = LossWeights(),
        anchor_t: float = 4.0,
    ) -> None:
        super().__init__()
        self.register_buffer("anchors", anchors.detach().clone().float())  # (L, A, 2) px
        self.strides = tuple(strides)
        self.weights = weights
        self.anchor_t = anchor_t
        self.balance = BALANCE[len(self.strides)]
        self.register_buffer("sigmas", torch.tensor(sigmas, dtype=torch.float32))
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, preds: list[Tensor], targets: Tensor) -> tuple[Tensor, Tensor]:
        dev = preds[0].device
        lbox, lobj, lcls, lkpt, lkc, lkl1 = (torch.zeros((), device=dev) for _ in range(6))
        shapes = [(p.shape[2], p.shape[3]) for p in preds]
        level_targets = build_targets(
            targets.to(dev).float(), self.anchors, self.strides, shapes, self.anchor_t
        )
        w = self.weights
        for i, (p, lt) in enumerate(zip(preds, level_targets, strict=True)):
            p = p.float()
            tobj = torch.zeros(p.shape[:4], device=dev)  # (B, A, H, W)
            n = lt.b.shape[0]
            if n:
                ps = p[lt.b, lt.a, lt.gj, lt.gi]  # (n, 6+3K)
                pxy = ps[:, :2].sigmoid() * 2 - 0.5
                pwh = (ps[:, 2:4].sigmoid() * 2) ** 2 * lt.anchor
                iou = bbox_ciou(torch.cat((pxy, pwh), 1), lt.box)  # (n,)
                lbox = lbox + (1.0 - iou).mean()
                tobj[lt.b, lt.a, lt.gj, lt.gi] = iou.detach().clamp(0)
                lcls = lcls + self.bce(ps[:, 5], torch.ones_like(ps[:, 5]))
                pk = ps[:, 6:].reshape(n, -1, 3)  # (n, K, 3)
                area = lt.box[:, 2] * lt.box[:, 3]
                pkxy = pk[..., :2] * 2 - 0.5
                lkpt = lkpt + oks_loss(pkxy, lt.kpts, area, self.sigmas)
                if w.kpt_l1:
                    lkl1 = lkl1 + kpt_l1_loss(pkxy, lt.kpts, area)
                lkc = lkc + self.bce(pk[..., 2], (lt.kpts[..., 2] > 0).float())
            lobj = lobj + self.bce(p[..., 4], tobj) * self.balance[i]
        parts = torch.stack(
            (lbox * w.box, lobj * w.obj, lcls * w.cls, lkpt * w.kpt, lkc * w.kconf, lkl1 * w.kpt_l1)
        )  # (6,)
        bs = preds[0].shape[0]
        return parts.sum() * bs, parts.detach()
