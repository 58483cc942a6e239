"""Fidelity to float: how far a quantized model's detections are from the float model's, without labels.

The float model's confident detections (score >= `ref_conf`, the deployment threshold by default) are
the reference. Each is matched to at most one detection of the other model on the same image, greedily
in descending reference score, by keypoint OKS with the COCO sigmas (spec.sigmas_for), the float
detection standing in for the ground truth:

    OKS(r, c) = mean over r's visible keypoints of exp(-d^2 / (2 * s^2 * (2 sigma)^2)),
    s^2 = area(r's box) * AREA_RATIO

Figures over all reference detections (an unmatched one counts as OKS 0):
- mean_oks:   mean OKS to the matched detection (1.0 = identical keypoints for every person);
- recovered:  share matched with OKS >= `recover_oks` AND still scoring >= `ref_conf` (kept at deployment);
- score_mae:  mean |score - float score| over matched pairs (score agreement; 0 = identical);
- box_iou:    mean box IoU over matched pairs;
- drop:       1 - mean of OKS * (1 - |score difference|): the task unit of `edgepose quantize`
              (--max-drop, per-layer sensitivity). It moves with keypoints, boxes through the area,
              scores and lost people together, and needs no labels.

Also the raw-output error `nmse` (the head tensors the float tail reads, vs float).

Needs only numpy: bench runs it on a board without onnx.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from edgepose.defaults import DEPLOY

# COCO scores OKS against the segmentation area; for a person it is ~0.53 of the box area
# (the ratio Ultralytics uses when only boxes are known).
AREA_RATIO = 0.53
VISIBLE = 0.5  # a reference keypoint with confidence >= this is scored (COCO: v > 0)
RECOVER_OKS = 0.5
DEFAULT_REF_CONF = DEPLOY.conf  # the deployment score threshold


@dataclass(frozen=True, eq=False)
class Detections:
    """One image's people in one pixel frame: boxes (N, 4) x1 y1 x2 y2, scores (N,), keypoints (N, K, 3)."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray

    @classmethod
    def from_rows(cls, rows: np.ndarray, count: int, num_keypoints: int) -> Detections:
        """The first `count` rows of the end-to-end output: x1, y1, x2, y2, score, class, K x (x, y, conf)."""
        rows = np.asarray(rows, np.float64)[: max(0, int(count))]  # (n, 6 + 3K)
        n = rows.shape[0]
        kpts = rows[:, 6 : 6 + 3 * num_keypoints].reshape(n, num_keypoints, 3)  # (n, K, 3)
        return cls(rows[:, :4], rows[:, 4], kpts)

    @classmethod
    def empty(cls, num_keypoints: int) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, num_keypoints, 3)))

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(R, C) IoU of boxes a (R, 4) and b (C, 4), x1 y1 x2 y2."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # (R, C, 2)
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _oks(ref: Detections, cand_kpts: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """OKS of candidate keypoints against the references; `cand_kpts` (R, C, K, 3) -> (R, C)."""
    k2 = (2.0 * np.asarray(sigmas, np.float64)) ** 2  # (K,)
    wh = np.clip(ref.boxes[:, 2:] - ref.boxes[:, :2], 0, None)
    s2 = np.maximum(wh[:, 0] * wh[:, 1] * AREA_RATIO, 1.0)  # (R,) at least one square pixel
    d2 = np.sum((ref.keypoints[:, None, :, :2] - cand_kpts[..., :2]) ** 2, axis=3)  # (R, C, K)
    e = np.exp(-d2 / (2.0 * s2[:, None, None] * k2))  # (R, C, K)
    vis = ref.keypoints[:, :, 2] >= VISIBLE  # (R, K)
    vis = np.where(vis.any(axis=1, keepdims=True), vis, True)  # nothing visible: score every keypoint
    return np.sum(e * vis[:, None, :], axis=2) / np.sum(vis, axis=1)[:, None]


def oks_matrix(ref: Detections, cand: Detections, sigmas: Sequence[float]) -> np.ndarray:
    """(R, C) OKS of every candidate against every reference detection (the reference as ground truth)."""
    if not len(ref) or not len(cand):
        return np.zeros((len(ref), len(cand)))
    return _oks(ref, cand.keypoints[None], sigmas)  # candidates broadcast over references


def oks_paired(ref: Detections, cand: Detections, sigmas: Sequence[float]) -> np.ndarray:
    """(R,) OKS of candidate i against reference i (rows that correspond one to one)."""
    if not len(ref):
        return np.zeros(0)
    return _oks(ref, cand.keypoints[:, None], sigmas)[:, 0]


@dataclass(frozen=True)
class Fidelity:
    num_ref: int  # reference (float) detections scored
    mean_oks: float
    recovered: float
    score_mae: float
    box_iou: float
    drop: float

    def to_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class FidelityMeter:
    """Accumulates matches image by image (memory does not grow with the number of images)."""

    def __init__(
        self, sigmas: Sequence[float], ref_conf: float = DEFAULT_REF_CONF, recover_oks: float = RECOVER_OKS
    ) -> None:
        self.sigmas, self.ref_conf, self.recover_oks = tuple(sigmas), ref_conf, recover_oks
        self.num_ref = self.num_matched = self.num_recovered = 0
        self.sum_oks = self.sum_agree = self.sum_score_err = self.sum_iou = 0.0

    def reference(self, dets: Detections) -> Detections:
        """The float detections that count as reference (score >= ref_conf), highest score first."""
        keep = np.flatnonzero(dets.scores >= self.ref_conf)
        keep = keep[np.argsort(-dets.scores[keep], kind="stable")]
        return Detections(dets.boxes[keep], dets.scores[keep], dets.keypoints[keep])

    def add(self, float_dets: Detections, other: Detections) -> None:
        """One image: the float model's detections and the other model's, in the same pixel frame."""
        ref = self.reference(float_dets)
        oks = oks_matrix(ref, other, self.sigmas)  # (R, C)
        iou = box_iou(ref.boxes, other.boxes) if len(ref) and len(other) else oks
        free = np.ones(len(other), bool)
        for r in range(len(ref)):
            self.num_ref += 1
            if not free.any():
                continue
            c = int(np.argmax(np.where(free, oks[r], -1.0)))
            if oks[r, c] <= 0.0:
                continue
            free[c] = False
            err = abs(float(other.scores[c]) - float(ref.scores[r]))
            self.num_matched += 1
            self.sum_oks += float(oks[r, c])
            self.sum_agree += float(oks[r, c]) * max(0.0, 1.0 - err)
            self.sum_score_err += err
            self.sum_iou += float(iou[r, c])
            if oks[r, c] >= self.recover_oks and other.scores[c] >= self.ref_conf:
                self.num_recovered += 1

    def add_paired(self, float_dets: Detections, other: Detections) -> None:
        """One image whose rows correspond one to one (the other model evaluated at the float model's
        selected candidates, e.g. with the float NMS selection fed in): no matching, so no NMS flips."""
        if len(float_dets) != len(other):
            raise ValueError(f"paired detections differ in length: {len(float_dets)} vs {len(other)}")
        keep = np.flatnonzero(float_dets.scores >= self.ref_conf)
        if not keep.size:
            return
        ref = Detections(float_dets.boxes[keep], float_dets.scores[keep], float_dets.keypoints[keep])
        oth = Detections(other.boxes[keep], other.scores[keep], other.keypoints[keep])
        oks = oks_paired(ref, oth, self.sigmas)  # (R,): row i against row i, no (R, R) matrix
        iou = np.diag(box_iou(ref.boxes, oth.boxes))
        err = np.abs(oth.scores - ref.scores)
        self.num_ref += len(keep)
        self.num_matched += len(keep)
        self.sum_oks += float(oks.sum())
        self.sum_agree += float(np.sum(oks * np.clip(1.0 - err, 0.0, None)))
        self.sum_score_err += float(err.sum())
        self.sum_iou += float(iou.sum())
        self.num_recovered += int(np.sum((oks >= self.recover_oks) & (oth.scores >= self.ref_conf)))

    def result(self) -> Fidelity:
        n, m = max(1, self.num_ref), max(1, self.num_matched)
        if not self.num_ref:  # no confident float detection at all: nothing to lose
            return Fidelity(0, 1.0, 1.0, 0.0, 1.0, 0.0)
        return Fidelity(
            num_ref=self.num_ref,
            mean_oks=self.sum_oks / n,
            recovered=self.num_recovered / n,
            score_mae=self.sum_score_err / m if self.num_matched else 1.0,
            box_iou=self.sum_iou / m if self.num_matched else 0.0,
            drop=1.0 - self.sum_agree / n,
        )


def fidelity(
    float_dets: Sequence[Detections],
    other_dets: Sequence[Detections],
    sigmas: Sequence[float],
    ref_conf: float = DEFAULT_REF_CONF,
) -> Fidelity:
    """Fidelity of `other_dets` to `float_dets` (one Detections per image, same order)."""
    meter = FidelityMeter(sigmas, ref_conf)
    for f, o in zip(float_dets, other_dets, strict=True):
        meter.add(f, o)
    return meter.result()


def nmse(outputs: Sequence[Sequence[np.ndarray]], reference: Sequence[Sequence[np.ndarray]]) -> float:
    """Mean over output tensors of sum_images ||y - ref||^2 / sum_images ||ref||^2."""
    per_out = []
    for j in range(len(reference[0])):
        num = sum(
            float(np.sum((o[j].astype(np.float64) - r[j]) ** 2))
            for o, r in zip(outputs, reference, strict=True)
        )
        den = sum(float(np.sum(r[j].astype(np.float64) ** 2)) for r in reference)
        per_out.append(num / max(den, 1e-30))
    return float(np.mean(per_out))
