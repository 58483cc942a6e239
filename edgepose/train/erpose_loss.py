"""ER-Pose loss: smooth OKS (keypoints), BCE (keypoint visibility), quality-target BCE (person confidence).

Definitions and reasons (published detail is thin; these are our choices):

**Smooth OKS loss.** Per labelled keypoint, with u^2 = d^2 / (2 s^2 (2 sigma)^2) the squared distance
in COCO's OKS units (s^2 = the person's box area, sigma its COCO sigma):

    l(u) = (1 - exp(-u^2)) + TAIL * (sqrt(1 + u^2) - 1)

averaged over the labelled keypoints of the positives. The first term is 1 - OKS, the metric itself; its
gradient, 2u exp(-u^2), dies a few sigmas away (exp(-25) ~ 1e-11 at u = 5), which is where every keypoint
starts (the YOLO-Pose recipe adds an L1 term for this). The second is a pseudo-Huber tail in the same
units: ~TAIL u^2 / 2 near the target and ~TAIL |u| far from it, so the gradient never vanishes (-> TAIL
per OKS unit) yet stays bounded (|dl/du| <= sqrt(2/e) + TAIL ~ 0.96): no exploding steps from a wild
prediction, unlike L2. l is smooth (C-infinity, written in u^2 so no sqrt(d^2) kink at the target), 0
only at the target, and scale-invariant per person like OKS.

**Keypoint visibility**: BCE of the visibility logits against "labelled" (v > 0), at the positives.

**Person confidence follows keypoint quality**: each branch's BCE target is the detached OKS of the
positive cell's predicted keypoints with its person (0 elsewhere; cells inside an unlabelled person's box
ignored), like YOLOv5's IoU-aware objectness: the score ranks a pose by how good it is, which is what
OKS AP integrates over. Averaged per level over the non-ignored cells, with YOLOv5's level balance.

Both assignments contribute keypoint and visibility terms (the pose branch is shared; the one-to-one
cell's keypoints are the ones inference outputs, so they get their own term), each its own confidence
term. Returns (loss * batch size, detached parts), as `PoseLoss`, for SGD at the recipe's LR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from edgepose.nn.erpose import O2M, O2O, flatten_levels, keypoints_px
from edgepose.train.erpose_assign import (
    TOPK,
    Positives,
    assign,
    candidate_prior,
    ignore_mask,
    log_oks,
    pad_targets,
)
from edgepose.train.loss import BALANCE

ERPOSE_LOSS_NAMES = ("oks", "kconf", "conf_o2m", "conf_o2o")
TAIL = 0.1  # weight of the pseudo-Huber tail of the smooth OKS loss


@dataclass(frozen=True)
class ERPoseLossWeights:
    oks: float = 1.0
    kconf: float = 0.5
    conf_o2m: float = 1.0
    conf_o2o: float = 1.0


def smooth_oks_terms(
    pred_xy: Tensor, target: Tensor, area: Tensor, sigmas: Tensor, tail: float = TAIL
) -> Tensor:
    """Per-keypoint smooth OKS loss (n, K) (module docstring): pred_xy (n, K, 2), target (n, K, 3), area (n,)
    in px; sigmas (K,)."""
    d2 = ((pred_xy - target[..., :2]) ** 2).sum(-1)  # (n, K)
    u2 = d2 / (2 * area[:, None] * (2 * sigmas) ** 2)  # (n, K)
    return (1 - torch.exp(-u2)) + tail * (torch.sqrt(1 + u2) - 1)


def smooth_oks_loss(
    pred_xy: Tensor, target: Tensor, area: Tensor, sigmas: Tensor, tail: float = TAIL
) -> Tensor:
    """Mean smooth OKS loss over the labelled (v > 0) keypoints; 0 when none is labelled."""
    labelled = (target[..., 2] > 0).to(pred_xy.dtype)  # (n, K)
    terms = smooth_oks_terms(pred_xy, target, area, sigmas, tail)
    return (terms * labelled).sum() / labelled.sum().clamp(min=1)


class ERPoseLoss(nn.Module):
    """Total loss for ER-Pose raw maps [(B, H, W, 2 + 3K)] and collated targets (nt, 6 + 3K) px."""

    def __init__(
        self,
        strides: Sequence[int],
        sigmas: Sequence[float],
        weights: ERPoseLossWeights = ERPoseLossWeights(),
    ) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.weights = weights
        self.balance = BALANCE[len(self.strides)]
        self.register_buffer("sigmas", torch.tensor(sigmas, dtype=torch.float32))

    def forward(self, preds: list[Tensor], targets: Tensor) -> tuple[Tensor, Tensor]:
        preds = [p.float() for p in preds]
        bs = preds[0].shape[0]
        conf, kraw, centres, steps = flatten_levels(preds, self.strides)  # (B, N, 2), (B, N, K, 3), ...
        pred_xy = keypoints_px(kraw, centres, steps)  # (B, N, K, 2)
        gt = pad_targets(targets.to(conf.device).float(), bs)
        with torch.no_grad():
            prior = candidate_prior(gt, centres, steps)  # (B, G, N)
            lo = log_oks(pred_xy.detach(), gt, self.sigmas)  # (B, G, N)
            many = assign(conf[..., O2M].detach(), pred_xy, prior, lo, gt, TOPK)
            one = assign(conf[..., O2O].detach(), pred_xy, prior, lo, gt, 1)
            keep = ~ignore_mask(gt, centres)  # (B, N)
        loks = self._oks(pred_xy, many) + self._oks(pred_xy, one)
        lkc = self._vis(kraw, many) + self._vis(kraw, one)
        lc_many = self._conf(conf[..., O2M], many, keep, preds)
        lc_one = self._conf(conf[..., O2O], one, keep, preds)
        w = self.weights
        parts = torch.stack((loks * w.oks, lkc * w.kconf, lc_many * w.conf_o2m, lc_one * w.conf_o2o))  # (4,)
        return parts.sum() * bs, parts.detach()

    def _oks(self, pred_xy: Tensor, pos: Positives) -> Tensor:
        if not len(pos.b):
            return pred_xy.sum() * 0.0  # keeps the graph connected (DDP needs every parameter used)
        return smooth_oks_loss(pred_xy[pos.b, pos.n], pos.kpts, pos.area, self.sigmas)

    def _vis(self, kraw: Tensor, pos: Positives) -> Tensor:
        if not len(pos.b):
            return kraw.sum() * 0.0
        logits = kraw[pos.b, pos.n, :, 2]  # (P, K)
        return F.binary_cross_entropy_with_logits(logits, (pos.kpts[..., 2] > 0).to(logits.dtype))

    def _conf(self, logits: Tensor, pos: Positives, keep: Tensor, preds: list[Tensor]) -> Tensor:
        """Level-balanced mean BCE of one confidence branch's logits (B, N) against quality targets."""
        target = torch.zeros_like(logits)
        target[pos.b, pos.n] = pos.quality.to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * keep  # (B, N)
        total, start = logits.new_zeros(()), 0
        for p, balance in zip(preds, self.balance, strict=True):
            n = p.shape[1] * p.shape[2]
            cells = keep[:, start : start + n].sum().clamp(min=1)
            total = total + bce[:, start : start + n].sum() / cells * balance
            start += n
        return total
