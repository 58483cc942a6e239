"""ER-Pose target assignment: keypoint-driven, dynamic, task-aligned; one-to-many and one-to-one.

Published detail is thin ("MAH-SAH": a multi-assignment and a single-assignment head), so this is our
design, with the reasons:

* **Candidates (centre/region prior).** A cell of any level is a candidate for a person when its centre
  lies inside the person's box and within RADIUS strides of the box centre (both axes), or within half a
  cell of the box centre (so the cell holding the centre always is, however small the person). Every
  level is searched: which scale suits a person is left to the quality metric, not to a size rule.
* **Quality = OKS of the cell's own predicted keypoints with the person**, as COCO defines it (mean over
  labelled keypoints of exp(-d^2 / (2 s^2 (2 sigma)^2)), s^2 = the box area, as the YOLO-Pose loss uses).
  The keypoints, not a box IoU, pick the samples: this is what makes the assignment keypoint-driven.
* **Task-aligned metric** t = score^ALPHA * OKS^BETA (TOOD's form and values, OKS in IoU's place), ranked
  in log space: at initialisation every OKS is ~exp(-30), whose 6th power underflows float32, while
  log t = ALPHA log score + BETA log OKS keeps the ranking (the cell whose keypoints are nearest wins).
* **One-to-many** (TOPK = 10 per person, the score of the `conf_o2m` branch): dense positives for the
  shared pose branch and the o2m confidence. **One-to-one** (top 1, the score of `conf_o2o`, same metric
  and prior, as YOLOv10's consistent matching): one positive per person, the only score used at
  inference, which is why the deployed graph needs no NMS. With BETA = 6 the keypoint term dominates the
  ranking, so the one-to-one cell is almost always one of the one-to-many cells.
* **A cell claimed by several people** goes to the one with the highest metric (TOOD's rule); in the
  one-to-one assignment the other person then has no positive in that step (no second pick: a cell
  whose keypoints fit two people equally is rare, and a re-pick would break "one positive = the best").
* **People without labelled keypoints** (COCO's small people, `num_keypoints: 0`) are not assigned; the
  cells inside their boxes are *ignored* by the confidence losses, as COCOeval ignores them.

Everything here runs under `torch.no_grad()`; positives carry a detached quality for the confidence
targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from edgepose.train.assign import TARGET_COLS

ALPHA = 0.5  # weight of the predicted score in the metric (TOOD)
BETA = 6.0  # weight of the keypoint quality (TOOD uses IoU^6)
TOPK = 10  # one-to-many positives per person (TOOD / YOLOv8)
RADIUS = 2.5  # centre prior: half-side of the candidate square, in strides (YOLOX's centre radius)


@dataclass
class GroundTruth:
    """Targets padded per image: G = the most people in one image of the batch."""

    kpts: Tensor  # (B, G, K, 3) x, y px, v
    box: Tensor  # (B, G, 4) x1, y1, x2, y2 px
    area: Tensor  # (B, G) box w * h px^2 (the OKS scale s^2)
    valid: Tensor  # (B, G) bool: a real person
    has_kpts: Tensor  # (B, G) bool: with at least one labelled keypoint


@dataclass
class Positives:
    """Positive samples of one assignment, flat: cell n of image b is assigned to person g."""

    b: Tensor  # (P,)
    n: Tensor  # (P,)
    kpts: Tensor  # (P, K, 3) the person's keypoints x, y px, v
    area: Tensor  # (P,)
    quality: Tensor  # (P,) OKS of the cell's predicted keypoints with the person (detached)


def pad_targets(targets: Tensor, batch: int) -> GroundTruth:
    """Collated targets (nt, 6 + 3K) = image, class, cx, cy, w, h, K x (x, y, v) in px -> GroundTruth."""
    nt = targets.shape[0]
    k = (targets.shape[1] - TARGET_COLS) // 3
    img = targets[:, 0].long()
    counts = torch.bincount(img, minlength=batch)
    g = int(counts.max()) if nt else 0
    # Slot of each row within its image: rows of one image are contiguous in collate's order, but sort to
    # be safe; slot = rank among the rows of the same image.
    order = torch.argsort(img, stable=True)
    first = torch.cumsum(counts, 0) - counts  # (B,) index of each image's first row in `order`
    slot = torch.empty_like(img)
    slot[order] = torch.arange(nt, device=targets.device) - first[img[order]]
    kpts = targets.new_zeros(batch, g, k, 3)
    cxcywh = targets.new_zeros(batch, g, 4)
    valid = torch.zeros(batch, g, dtype=torch.bool, device=targets.device)
    kpts[img, slot] = targets[:, TARGET_COLS:].reshape(nt, k, 3)  # (B, G, K, 3)
    cxcywh[img, slot] = targets[:, 2:6]
    valid[img, slot] = True
    half = cxcywh[..., 2:] / 2
    box = torch.cat((cxcywh[..., :2] - half, cxcywh[..., :2] + half), -1)  # (B, G, 4)
    area = (cxcywh[..., 2] * cxcywh[..., 3]).clamp(min=1.0)
    has = valid & (kpts[..., 2] > 0).any(-1)
    return GroundTruth(kpts=kpts, box=box, area=area, valid=valid, has_kpts=has)


def candidate_prior(gt: GroundTruth, centres: Tensor, strides: Tensor) -> Tensor:
    """(B, G, N) bool: the centre/region prior (module docstring) for people with keypoints."""
    c = (gt.box[..., :2] + gt.box[..., 2:]) / 2  # (B, G, 2) box centre
    off = (centres[None, None] - c[:, :, None]).abs() / strides[None, None, :, None]  # (B, G, N, 2) cells
    near = off.amax(-1)  # (B, G, N) L-inf distance in cells
    x, y = centres[:, 0], centres[:, 1]  # (N,)
    bx = gt.box[..., None, :]  # (B, G, 1, 4)
    inside = (x >= bx[..., 0]) & (x <= bx[..., 2]) & (y >= bx[..., 1]) & (y <= bx[..., 3])  # (B, G, N)
    prior = (inside & (near <= RADIUS)) | (near <= 0.5)
    return prior & gt.has_kpts[..., None]


def log_oks(pred_xy: Tensor, gt: GroundTruth, sigmas: Tensor) -> Tensor:
    """(B, G, N) log OKS of every cell's predicted keypoints (B, N, K, 2) px with every person."""
    d2 = ((pred_xy[:, None] - gt.kpts[:, :, None, :, :2]) ** 2).sum(-1)  # (B, G, N, K)
    scale = 2 * gt.area[..., None, None] * (2 * sigmas) ** 2  # (B, G, 1, K)
    labelled = gt.kpts[..., 2] > 0  # (B, G, K)
    e = torch.where(labelled[:, :, None], -d2 / scale, -math.inf)  # (B, G, N, K)
    n = labelled.sum(-1).clamp(min=1)[..., None]  # (B, G, 1)
    return torch.logsumexp(e, -1) - n.log()  # (B, G, N); -inf for people without keypoints


@torch.no_grad()
def assign(
    conf_logit: Tensor, pred_xy: Tensor, prior: Tensor, lo: Tensor, gt: GroundTruth, topk: int
) -> Positives:
    """Top-`topk` cells per person by log(score^ALPHA * OKS^BETA) among the prior's candidates.

    conf_logit (B, N) the ranking branch's logits, pred_xy (B, N, K, 2) px, prior (B, G, N) bool,
    lo (B, G, N) = log_oks(...).
    """
    if prior.shape[1] == 0:  # no people in the batch
        empty = torch.zeros(0, dtype=torch.long, device=prior.device)
        k = gt.kpts.shape[2]
        z = lo.new_zeros(0)
        return Positives(b=empty, n=empty, kpts=gt.kpts.new_zeros(0, k, 3), area=z, quality=z)
    metric = ALPHA * torch.nn.functional.logsigmoid(conf_logit)[:, None] + BETA * lo  # (B, G, N)
    metric = torch.where(prior, metric, -math.inf)
    k = min(topk, metric.shape[-1])
    top, idx = metric.topk(k, dim=-1)  # (B, G, k)
    pos = torch.zeros_like(prior)
    pos.scatter_(-1, idx, torch.isfinite(top))  # (B, G, N)
    # A cell claimed by several people keeps the one with the highest metric.
    claimed = torch.where(pos, metric, -math.inf)  # (B, G, N)
    best = claimed.argmax(1, keepdim=True)  # (B, 1, N)
    pos &= torch.arange(pos.shape[1], device=pos.device)[None, :, None] == best
    b, g, n = pos.nonzero(as_tuple=True)  # (P,) each
    return Positives(b=b, n=n, kpts=gt.kpts[b, g], area=gt.area[b, g], quality=lo[b, g, n].exp())


def ignore_mask(gt: GroundTruth, centres: Tensor) -> Tensor:
    """(B, N) bool: cells whose centre lies inside the box of a person without labelled keypoints."""
    x, y = centres[:, 0], centres[:, 1]  # (N,)
    bx = gt.box[..., None, :]  # (B, G, 1, 4)
    inside = (x >= bx[..., 0]) & (x <= bx[..., 2]) & (y >= bx[..., 1]) & (y <= bx[..., 3])  # (B, G, N)
    return (inside & (gt.valid & ~gt.has_kpts)[..., None]).any(1)
