"""YOLOv5-style target assignment: each person goes to every anchor whose shape is within a ratio of
its box, at the centre cell and the two neighbouring cells nearest the centre."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# Column layout of the collated target tensor (nt, TARGET_COLS + 3K), all in input pixels.
TARGET_COLS = 6  # image index in batch, class, cx, cy, w, h; then K x (x, y, v)
_NEIGHBOUR_G = 0.5  # a neighbouring cell is used when the centre lies within 0.5 cell of its border


@dataclass
class LevelTargets:
    """Positive samples of one level; box and keypoints in grid units relative to the cell (gi, gj)."""

    b: Tensor  # (n,) image index
    a: Tensor  # (n,) anchor index
    gj: Tensor  # (n,) cell row
    gi: Tensor  # (n,) cell column
    box: Tensor  # (n, 4) cx - gi, cy - gj, w, h
    kpts: Tensor  # (n, K, 3) x - gi, y - gj, v
    anchor: Tensor  # (n, 2) anchor w, h in grid units


def build_targets(
    targets: Tensor,
    anchors: Tensor,
    strides: Sequence[int],
    shapes: Sequence[tuple[int, int]],
    anchor_t: float = 4.0,
) -> list[LevelTargets]:
    """Assign `targets` (nt, 6 + 3K) to anchors (L, A, 2 px) on grids `shapes` [(H_l, W_l)].

    People without a labelled keypoint (COCO's `num_keypoints: 0`, e.g. small people) are not assigned:
    trained as boxes with no keypoint signal they became confident detections with arbitrary poses,
    which COCOeval counts as false positives (the generator's version-2 data: overfit AP 0.38 -> 0.05).
    """
    targets = targets[(targets[:, TARGET_COLS + 2 :: 3] > 0).any(1)]  # (nt', 6 + 3K)
    device = targets.device
    nt = targets.shape[0]
    na = anchors.shape[1]
    k = (targets.shape[1] - TARGET_COLS) // 3
    ai = torch.arange(na, device=device, dtype=targets.dtype).view(na, 1).repeat(1, nt)  # (A, nt)
    t_all = torch.cat((targets.unsqueeze(0).repeat(na, 1, 1), ai[..., None]), 2)  # (A, nt, 6+3K+1)
    off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], device=device, dtype=targets.dtype)
    off = off * _NEIGHBOUR_G  # (5, 2)
    # Columns holding pixel coordinates that scale with the stride: cx, cy, w, h and every keypoint x, y.
    scale_cols = torch.zeros(t_all.shape[-1], dtype=torch.bool, device=device)
    scale_cols[2:6] = True
    kcols = TARGET_COLS + torch.arange(k, device=device) * 3
    scale_cols[kcols] = True
    scale_cols[kcols + 1] = True

    out = []
    for level, stride in enumerate(strides):
        h, w = shapes[level]
        anc = anchors[level].to(targets.dtype) / stride  # (A, 2) grid units
        t = torch.where(scale_cols, t_all / stride, t_all)  # (A, nt, D)
        if nt:
            r = t[..., 4:6] / anc[:, None]  # (A, nt, 2) wh ratio to each anchor
            keep = torch.max(r, 1.0 / r).max(2)[0] < anchor_t  # (A, nt)
            t = t[keep]  # (m, D)
            gxy = t[:, 2:4]
            gxi = torch.tensor([w, h], device=device, dtype=t.dtype) - gxy
            j, kk = ((gxy % 1 < _NEIGHBOUR_G) & (gxy > 1)).T
            left, m = ((gxi % 1 < _NEIGHBOUR_G) & (gxi > 1)).T
            sel = torch.stack((torch.ones_like(j), j, kk, left, m))  # (5, m)
            t = t.repeat((5, 1, 1))[sel]  # (n, D)
            offsets = (torch.zeros_like(gxy)[None] + off[:, None])[sel]  # (n, 2)
        else:
            t = t_all[0]
            offsets = torch.zeros((0, 2), device=device, dtype=targets.dtype)
        b = t[:, 0].long()
        a = t[:, -1].long()
        gxy = t[:, 2:4]
        gij = (gxy - offsets).long()
        gi = gij[:, 0].clamp(0, w - 1)
        gj = gij[:, 1].clamp(0, h - 1)
        cell = torch.stack((gi, gj), 1).to(t.dtype)  # (n, 2)
        box = torch.cat((gxy - cell, t[:, 4:6]), 1)  # (n, 4)
        kp = t[:, TARGET_COLS : TARGET_COLS + 3 * k].reshape(-1, k, 3)  # (n, K, 3)
        kp = torch.cat((kp[..., :2] - cell[:, None], kp[..., 2:]), -1)  # (n, K, 3)
        out.append(LevelTargets(b=b, a=a, gj=gj, gi=gi, box=box, kpts=kp, anchor=anc[a]))
    return out
