"""Typed prediction results in original-image pixels."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from edgepose.cocofmt import detections_to_coco
from edgepose.runtime.timing import Timings


@dataclass(frozen=True, eq=False)  # numpy fields: compare arrays explicitly
class Detection:
    """One person: box (x1, y1, x2, y2), score, keypoints (K, 3) as (x, y, conf); original pixels."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray


@dataclass(frozen=True, eq=False)  # numpy fields: compare arrays explicitly
class PoseResult:
    """All people found in one image, in that image's pixels (clipped to it)."""

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32
    keypoints: np.ndarray  # (N, K, 3) float32 x, y, conf
    keypoint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]  # 0-based keypoint index pairs
    image_size: tuple[int, int]  # (H, W) of the original image
    timings: Timings | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __iter__(self) -> Iterator[Detection]:
        for i in range(len(self)):
            yield Detection(self.boxes[i], float(self.scores[i]), self.keypoints[i])

    def to_coco(self, image_id: int) -> list[dict[str, object]]:
        """COCO keypoint results (`loadRes` format): bbox as x, y, w, h; keypoint conf as the 3rd value."""

        return detections_to_coco(image_id, self.boxes, self.scores, self.keypoints)
