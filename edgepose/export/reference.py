"""Reference end-to-end postprocess in NumPy: what the exported tail must reproduce (NMS: `edgepose.nms`)."""

from __future__ import annotations

import numpy as np

from edgepose.nms import nms


def reference_detections(
    boxes: np.ndarray, scores: np.ndarray, kpts: np.ndarray, *, conf: float, iou: float, max_det: int
) -> list[np.ndarray]:
    """Per image, the rows the end-to-end graph must output (before zero padding).

    boxes (B, N, 4), scores (B, N), kpts (B, N, 3K) -> B arrays (n_b, 6 + 3K) =
    x1, y1, x2, y2, score, class (0), K x (x, y, conf).
    """
    out = []
    for b in range(boxes.shape[0]):
        keep = nms(boxes[b], scores[b], iou, conf, max_det)
        rows = np.concatenate(
            [boxes[b, keep], scores[b, keep, None], np.zeros((len(keep), 1), np.float32), kpts[b, keep]],
            axis=1,
        )  # (n_b, 6 + 3K)
        out.append(rows.astype(np.float32))
    return out
