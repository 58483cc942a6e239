"""ER-Pose: an NMS-free, keypoint-driven pose head (after Li et al., 2026) on the YOLO-Pose backbone and neck.

Published detail is thin (abstract and figure captions), so the parts below are our design; each choice
and its reason:

* **Backbone and neck are the YOLO-Pose ones** (`edgepose.nn.model.Backbone`, `Neck`), unchanged, so the
  two heads are compared on the same features and an ER-Pose model can start from a YOLO-Pose
  checkpoint's backbone (`--init-from`).
* **Anchor-free, one prediction per grid cell** on every output level (P3-P5, P3-P6 for strides
  [8, 16, 32, 64]). Per cell: a person-confidence logit and K x (dx, dy, visibility logit). There is no
  box branch and no anchors: the keypoints are the primary output.
* **Keypoints are offsets from the cell centre in stride units**: x = (gx + 0.5 + dx) * stride, likewise y,
  with a linear (unbounded) dx so a cell can reach every joint of a person several cells tall; zero bias
  puts every keypoint on its cell centre at initialisation. Visibility = sigmoid(logit).
* **Person-confidence branch of depthwise-separable convs** (the paper's caption): twice (3x3 depthwise
  -> BN -> act -> 1x1 pointwise -> BN -> act), then a 1x1 conv to one logit. Scoring a cell needs little
  channel mixing; the depthwise form costs ~1/9 of a standard 3x3 while still seeing a 5x5-cell window,
  enough to compare a cell with its neighbours, which a one-per-person score must do.
* **Pose branch of standard convs**: 3x3 -> 3x3 -> 1x1 to 3K (as YOLOv8-pose's keypoint branch), width
  max(C_P3 / 4, 3K) rounded up to 8. Regressing 17 joints from one cell needs the wider receptive field and
  full channel mixing of standard convs.
* **Two confidence branches, one pose branch.** Training assigns every person twice (see
  `edgepose.train.erpose_assign`): one-to-many (top-k cells, dense signal) and one-to-one (the single best
  cell). Each assignment has its own confidence branch (`conf_o2m`, `conf_o2o`); the pose branch is shared
  because both assignments rank cells by the same keypoint quality, so the one-to-one cell is also one
  of the one-to-many cells and its keypoints are trained by both. Inference uses `conf_o2o` alone, so
  the deployed graph has one confidence branch and no NMS; `conf_o2m` is dropped from exports.
* **The one-to-one branch reads detached features** (as YOLOv10): its one positive per person would
  otherwise pull the shared features towards suppressing good neighbouring cells, which fights the
  dense one-to-many signal the backbone learns from.
* **ReLU by default** like the rest of the family (every block takes the config's activation).
* **The box in the output contract is derived from the keypoints** (`boxes_from_keypoints`): the extent of
  the keypoints whose confidence is >= BOX_KPT_CONF (0.5, the runtime's drawing threshold; all K when
  none is), widened by BOX_MARGIN (10%) of its width and height on every side, because joints sit inside
  the body outline (the head top is above the eyes, hands and feet beyond wrists and ankles). COCO OKS
  AP never reads the box; it is for drawing and tracking.

`forward` returns per level one raw map (B, H, W, 2 + 3K) = [conf_o2m, conf_o2o, K x (dx, dy, vis)] in
train and eval alike; decoding lives in `decode_erpose`, the loss in `edgepose.train.erpose_loss`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from edgepose.nn.blocks import ConvBNAct
from edgepose.nn.config import Activation, HeadKind, ModelConfig
from edgepose.nn.model import backbone_and_neck

BOX_KPT_CONF = 0.5  # keypoints at or above this confidence span the derived box
BOX_MARGIN = 0.1  # the derived box grows by this share of its width/height on each side
CONF_COLS = 2  # raw map columns before the keypoints: conf_o2m, conf_o2o
O2M, O2O = 0, 1  # column of each confidence branch in the raw map


class DWSeparable(nn.Module):
    """3x3 depthwise conv -> BN -> act, then 1x1 pointwise conv -> BN -> act."""

    def __init__(self, c1: int, c2: int, act: Activation) -> None:
        super().__init__()
        self.dw = ConvBNAct(c1, c1, 3, act=act)
        self.dw.conv = nn.Conv2d(c1, c1, 3, 1, 1, groups=c1, bias=False)  # depthwise
        self.pw = ConvBNAct(c1, c2, 1, act=act)

    def forward(self, x: Tensor) -> Tensor:
        return self.pw(self.dw(x))


def _conf_branch(c: int, width: int, act: Activation) -> nn.Sequential:
    return nn.Sequential(DWSeparable(c, width, act), DWSeparable(width, width, act), nn.Conv2d(width, 1, 1))


class ERPoseHead(nn.Module):
    """Per level: conf_o2m, conf_o2o (depthwise-separable) and pose (standard convs) branches."""

    def __init__(self, chans: Sequence[int], num_keypoints: int, act: Activation) -> None:
        super().__init__()
        self.nk = 3 * num_keypoints
        pose_w = int(math.ceil(max(chans[0] // 4, self.nk) / 8) * 8)
        conf_w = chans[0]
        self.conf_o2m = nn.ModuleList(_conf_branch(c, conf_w, act) for c in chans)
        self.conf_o2o = nn.ModuleList(_conf_branch(c, conf_w, act) for c in chans)
        self.pose = nn.ModuleList(
            nn.Sequential(
                ConvBNAct(c, pose_w, 3, act=act),
                ConvBNAct(pose_w, pose_w, 3, act=act),
                nn.Conv2d(pose_w, self.nk, 1),
            )
            for c in chans
        )

    def level_convs(self, i: int, f: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Level i's conv outputs: conf_o2m (B, 1, H, W), conf_o2o (B, 1, H, W), pose (B, 3K, H, W)."""
        return self.conf_o2m[i](f), self.conf_o2o[i](f.detach()), self.pose[i](f)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        outs = []
        for i, f in enumerate(feats):
            y = torch.cat(self.level_convs(i, f), 1)  # (B, 2 + 3K, H, W)
            outs.append(y.permute(0, 2, 3, 1).contiguous())  # (B, H, W, 2 + 3K)
        return outs


class ERPoseModel(nn.Module):
    """ER-Pose network: (B, 3, H, W) RGB in [0, 1] -> per level raw maps (B, H/s, W/s, 2 + 3K)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.head is not HeadKind.ERPOSE:
            raise ValueError(f"ERPoseModel needs a config with head 'erpose', got '{cfg.head.value}'")
        self.cfg = cfg
        self.strides = tuple(cfg.strides)
        self.num_keypoints = cfg.num_keypoints
        self.backbone, self.neck, chans = backbone_and_neck(cfg)
        self.head = ERPoseHead(chans, self.num_keypoints, cfg.activation)
        self._init_biases()

    def _init_biases(self) -> None:
        # The YOLOv5 objectness prior (~8 people per image over the level's cells, at the config's input
        # size) on both confidence branches, so early steps are not all false positives.
        for branches in (self.head.conf_o2m, self.head.conf_o2o):
            for seq, s in zip(branches, self.strides, strict=True):
                nn.init.constant_(seq[-1].bias, math.log(8 / (self.cfg.input_size / s) ** 2))
        for seq in self.head.pose:
            nn.init.zeros_(seq[-1].bias)  # keypoints start on their cell centre, visibility at 0.5

    def features(self, x: Tensor) -> list[Tensor]:
        return self.neck(self.backbone(x))

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.head(self.features(x))


def cell_centres(h: int, w: int, like: Tensor) -> Tensor:
    """(H, W, 2) cell centres (x, y) in grid units: (gx + 0.5, gy + 0.5)."""
    ys = torch.arange(h, device=like.device, dtype=like.dtype) + 0.5
    xs = torch.arange(w, device=like.device, dtype=like.dtype) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    return torch.stack((gx, gy), -1)  # (H, W, 2)


def flatten_levels(raw: list[Tensor], strides: Sequence[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Raw maps -> conf logits (B, N, 2), keypoint raws (B, N, K, 3), cell centres (N, 2) px, strides (N,).

    N is ordered level, y, x (as the exported graph and `decode_erpose`).
    """
    confs, kpts, centres, steps = [], [], [], []
    for p, s in zip(raw, strides, strict=True):
        b, h, w, c = p.shape
        k = (c - CONF_COLS) // 3
        confs.append(p[..., :CONF_COLS].reshape(b, h * w, CONF_COLS))  # (B, HW, 2)
        kpts.append(p[..., CONF_COLS:].reshape(b, h * w, k, 3))  # (B, HW, K, 3)
        centres.append(cell_centres(h, w, p).reshape(h * w, 2) * s)  # (HW, 2) px
        steps.append(torch.full((h * w,), float(s), device=p.device, dtype=p.dtype))
    return torch.cat(confs, 1), torch.cat(kpts, 1), torch.cat(centres, 0), torch.cat(steps, 0)


def keypoints_px(kraw: Tensor, centres: Tensor, strides: Tensor) -> Tensor:
    """Keypoint raws (..., N, K, 3) -> x, y in input pixels (..., N, K, 2)."""
    return kraw[..., :2] * strides[:, None, None] + centres[:, None, :]  # (gx + 0.5 + d) * s


def boxes_from_keypoints(kpts: Tensor) -> Tensor:
    """Keypoints (..., K, 3) x, y, conf -> boxes (..., 4) x1, y1, x2, y2 (rule: the module docstring)."""
    xy, conf = kpts[..., :2], kpts[..., 2]
    use = conf >= BOX_KPT_CONF  # (..., K)
    use = use | ~use.any(-1, keepdim=True)  # none confident: span all keypoints
    inf = torch.full_like(xy, math.inf)
    lo = torch.where(use[..., None], xy, inf).amin(-2)  # (..., 2)
    hi = torch.where(use[..., None], xy, -inf).amax(-2)  # (..., 2)
    pad = (hi - lo) * BOX_MARGIN
    return torch.cat((lo - pad, hi + pad), -1)  # (..., 4)


def decode_erpose(raw: list[Tensor], strides: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """Raw maps -> boxes (B, N, 4) x1y1x2y2 px, scores (B, N) = sigmoid(conf_o2o), keypoints (B, N, K, 3)
    = (x px, y px, conf). The inference path: one-to-one scores, no NMS (select by score: `edgepose.topk`)."""
    conf, kraw, centres, steps = flatten_levels(raw, strides)
    xy = keypoints_px(kraw, centres, steps)  # (B, N, K, 2)
    kpts = torch.cat((xy, kraw[..., 2:].sigmoid()), -1)  # (B, N, K, 3)
    return boxes_from_keypoints(kpts), conf[..., O2O].sigmoid(), kpts
