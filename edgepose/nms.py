"""Greedy NMS in NumPy with the semantics of ONNX NonMaxSuppression as onnxruntime implements it.

Our own code because torchvision (whose `nms` would be the field's choice) is not installable here.
Candidates with score > threshold (strict), greedy in descending score order, a box is dropped when
its IoU with a kept box is > the IoU threshold (strict), boxes with zero area never suppress, at most
`max_det` kept. Ties in score keep the lower index first (a stable sort). A ground module: training
validation, the export reference and tests share it.
"""

from __future__ import annotations

import numpy as np


def _iou_one_to_many(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one x1y1x2y2 box with (M, 4) boxes, in float32 like the runtime; 0 where undefined."""
    x1 = np.maximum(np.minimum(box[0], box[2]), np.minimum(others[:, 0], others[:, 2]))
    x2 = np.minimum(np.maximum(box[0], box[2]), np.maximum(others[:, 0], others[:, 2]))
    y1 = np.maximum(np.minimum(box[1], box[3]), np.minimum(others[:, 1], others[:, 3]))
    y2 = np.minimum(np.maximum(box[1], box[3]), np.maximum(others[:, 1], others[:, 3]))
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = np.abs(box[2] - box[0]) * np.abs(box[3] - box[1])
    areas = np.abs(others[:, 2] - others[:, 0]) * np.abs(others[:, 3] - others[:, 1])
    union = area + areas - inter
    ok = (inter > 0) & (area > 0) & (areas > 0) & (union > 0)
    return np.where(ok, inter / np.where(ok, union, 1), 0).astype(np.float32)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_thr: float,
    score_thr: float = -np.inf,
    max_det: int | None = None,
) -> np.ndarray:
    """Greedy NMS over (N, 4) x1y1x2y2 boxes and (N,) scores -> kept indices, best first."""
    boxes = np.asarray(boxes, np.float32)
    scores = np.asarray(scores, np.float32)
    cand = np.nonzero(scores > np.float32(score_thr))[0]
    order = cand[np.argsort(-scores[cand], kind="stable")]
    cap = len(order) if max_det is None else max(0, int(max_det))
    keep: list[int] = []
    # Each kept box suppresses the later ones at once: the same result as testing every candidate
    # against all kept boxes (onnxruntime's loop), in (kept) instead of (candidates) NumPy steps.
    while order.size and len(keep) < cap:
        i, order = int(order[0]), order[1:]
        keep.append(i)
        order = order[~(_iou_one_to_many(boxes[i], boxes[order]) > np.float32(iou_thr))]
    return np.asarray(keep, dtype=np.int64)
