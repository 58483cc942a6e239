"""Decode raw head maps into boxes, scores and keypoints: a pure function, traced into the deploy graph.

Export-friendly: no in-place ops on inputs, no loops over data (only over the static list of
levels), no numpy; every shape follows from the input shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _grid(h: int, w: int, like: Tensor) -> Tensor:
    """(1, 1, H, W, 2) cell indices (x, y)."""
    ys = torch.arange(h, device=like.device, dtype=like.dtype)
    xs = torch.arange(w, device=like.device, dtype=like.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    return torch.stack((gx, gy), -1).view(1, 1, h, w, 2)  # (1, 1, H, W, 2)


def decode(raw: list[Tensor], anchors: Tensor, strides: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """Raw maps (B, A, H, W, 6 + 3K) per level -> boxes (B, N, 4) x1y1x2y2 input px, scores (B, N),
    keypoints (B, N, K, 3) = (x px, y px, conf). N is ordered level, anchor, y, x.

    xy = (sigmoid(t_xy) * 2 - 0.5 + grid) * stride;  wh = (sigmoid(t_wh) * 2)^2 * anchor_wh;
    score = sigmoid(obj) * sigmoid(cls);  keypoint xy = (k_xy * 2 - 0.5 + grid) * stride (YOLO-Pose:
    relative to the cell, not scaled by the anchor, no sigmoid), keypoint conf = sigmoid(k_c).
    """
    boxes, scores, kpts = [], [], []
    for i, (p, stride) in enumerate(zip(raw, strides, strict=True)):
        b, a, h, w, c = p.shape
        k = (c - 6) // 3
        grid = _grid(h, w, p)  # (1, 1, H, W, 2)
        anchor_wh = anchors[i].to(p.dtype).view(1, a, 1, 1, 2)  # (1, A, 1, 1, 2)
        t_xy, t_wh, obj, cls, kp = p.split((2, 2, 1, 1, 3 * k), dim=-1)
        xy = (t_xy.sigmoid() * 2.0 - 0.5 + grid) * stride  # (B, A, H, W, 2)
        wh2 = t_wh.sigmoid() * 2.0
        wh = wh2 * wh2 * anchor_wh  # (B, A, H, W, 2)
        box = torch.cat((xy - wh * 0.5, xy + wh * 0.5), -1)  # (B, A, H, W, 4)
        score = obj.sigmoid() * cls.sigmoid()  # (B, A, H, W, 1)
        kp = kp.reshape(b, a, h, w, k, 3)  # (B, A, H, W, K, 3)
        k_xy, k_c = kp.split((2, 1), dim=-1)
        k_xy = (k_xy * 2.0 - 0.5 + grid.unsqueeze(-2)) * stride  # (B, A, H, W, K, 2)
        kpt = torch.cat((k_xy, k_c.sigmoid()), -1)  # (B, A, H, W, K, 3)
        n = a * h * w
        boxes.append(box.reshape(b, n, 4))  # (B, A*H*W, 4)
        scores.append(score.reshape(b, n))  # (B, A*H*W)
        kpts.append(kpt.reshape(b, n, k, 3))  # (B, A*H*W, K, 3)
    return torch.cat(boxes, 1), torch.cat(scores, 1), torch.cat(kpts, 1)  # (B, N, 4), (B, N), (B, N, K, 3)
