"""A torch Dataset of augmented training samples over a PoseDataset, and its collate function."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from edgepose.data.types import PoseDataset
from edgepose.errors import DataError
from edgepose.train.assign import TARGET_COLS
from edgepose.train.augment import AugmentConfig, Sample, augment

NO_AUGMENT = AugmentConfig(mosaic=0.0, scale=(1.0, 1.0), translate=0.0, flip=0.0, hsv=(0.0, 0.0, 0.0))


def read_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB; DataError when OpenCV cannot decode the file."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: missing or not an image OpenCV can decode; replace or delete it")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class PoseTrainDataset(Dataset):
    """Item i -> (image (3, S, S) uint8 RGB, targets (N, 6 + 3K) float32 in pixels, column 0 unset).

    Augmentation is seeded by (seed, epoch, index): set `epoch` before each epoch's loader iterator
    is created, and `use_mosaic` to switch mosaic off for the closing epochs.
    """

    def __init__(
        self,
        data: PoseDataset,
        size: int,
        flip_index: Sequence[int],
        aug: AugmentConfig = NO_AUGMENT,
        seed: int = 0,
    ) -> None:
        self.data = data
        self.size = size
        self.flip_index = tuple(flip_index)
        self.aug = aug
        self.seed = seed
        self.epoch = 0
        self.use_mosaic = aug.mosaic > 0
        self.num_keypoints = len(data.keypoint_names)

    def __len__(self) -> int:
        return len(self.data.records)

    def load(self, index: int) -> Sample:
        rec = self.data.records[index]
        image = read_rgb(str(self.data.image_path(rec)))
        keep = rec.iscrowd == 0 if len(rec.iscrowd) == rec.num_people else np.ones(rec.num_people, bool)
        boxes = rec.boxes[keep].astype(np.float32).reshape(-1, 4)
        kpts = rec.keypoints[keep].astype(np.float32).reshape(-1, self.num_keypoints, 3)
        kpts[kpts[..., 2] <= 0] = 0.0
        return Sample(image, boxes, kpts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        mosaic = self.use_mosaic and rng.random() < self.aug.mosaic
        ids = [index, *rng.integers(0, len(self), 3)] if mosaic else [index]
        s = augment([self.load(int(i)) for i in ids], self.size, self.aug, self.flip_index, rng, mosaic)
        n = s.boxes.shape[0]
        t = np.zeros((n, TARGET_COLS + 3 * self.num_keypoints), np.float32)
        t[:, 2] = (s.boxes[:, 0] + s.boxes[:, 2]) / 2
        t[:, 3] = (s.boxes[:, 1] + s.boxes[:, 3]) / 2
        t[:, 4] = s.boxes[:, 2] - s.boxes[:, 0]
        t[:, 5] = s.boxes[:, 3] - s.boxes[:, 1]
        t[:, TARGET_COLS:] = s.kpts.reshape(n, 3 * self.num_keypoints)  # (N, 3K)
        image = torch.from_numpy(np.ascontiguousarray(s.image.transpose(2, 0, 1)))  # (3, S, S)
        return image, t


def collate(batch: list[tuple[torch.Tensor, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """-> images (B, 3, S, S) uint8, targets (nt, 6 + 3K) float32 with column 0 = index in batch."""
    images = torch.stack([b[0] for b in batch])  # (B, 3, S, S)
    rows = []
    for i, (_, t) in enumerate(batch):
        t = t.copy()
        t[:, 0] = i
        rows.append(t)
    return images, torch.from_numpy(np.concatenate(rows, 0))  # (nt, 6+3K)
