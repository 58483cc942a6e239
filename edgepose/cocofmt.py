"""COCO results format for detections (numpy only): a ground module shared by runtime, train and bench."""

from __future__ import annotations

import numpy as np


def detections_to_coco(
    image_id: int, boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray
) -> list[dict]:
    """COCO results dicts for one image's detections.

    boxes (N, 4) x1 y1 x2 y2 px, scores (N,), keypoints (N, K, 3) x, y, confidence.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)  # (N, 4)
    kpts = np.asarray(keypoints, np.float64)
    kpts = kpts.reshape(len(boxes), int(np.prod(kpts.shape[1:])))  # (N, 3K)
    out = []
    for box, score, kp in zip(boxes, np.asarray(scores, np.float64).reshape(-1), kpts, strict=True):
        x1, y1, x2, y2 = box
        out.append(
            {
                "image_id": int(image_id),
                "category_id": 1,
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "score": round(float(score), 5),
                "keypoints": [round(float(v), 3) for v in kp],
            }
        )
    return out
