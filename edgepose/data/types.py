"""The one internal representation every reader produces and every writer consumes.

Coordinates are pixels of the original image; keypoints are (K, 3) = x, y, v with the
COCO visibility convention v = 0 (not labelled / outside), 1 (labelled, occluded),
2 (labelled, visible).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgepose.spec import COCO_KEYPOINTS, COCO_SKELETON


@dataclass
class ImageRecord:
    """One image and its person annotations."""

    image_id: int
    file_name: str  # relative to PoseDataset.image_dir
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # (N, 4) x1 y1 x2 y2
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 17, 3), np.float32))  # (N, K, 3)
    areas: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))  # (N,) COCO area
    iscrowd: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))  # (N,)

    @property
    def num_people(self) -> int:
        return int(self.boxes.shape[0])


@dataclass
class PoseDataset:
    """A set of images with person keypoint annotations."""

    image_dir: Path
    records: list[ImageRecord]
    keypoint_names: tuple[str, ...] = COCO_KEYPOINTS
    skeleton: tuple[tuple[int, int], ...] = COCO_SKELETON  # 0-based pairs

    def __len__(self) -> int:
        return len(self.records)

    def image_path(self, record: ImageRecord) -> Path:
        return self.image_dir / record.file_name
