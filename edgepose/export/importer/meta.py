"""What a third-party source does not say about itself: its strides and its keypoints' meaning."""

from __future__ import annotations

import math

from edgepose.errors import ConfigError
from edgepose.spec import COCO_KEYPOINTS, COCO_SKELETON, flip_index_for

STRIDE_SETS = ((8, 16, 32), (8, 16, 32, 64))  # P3-P5 and the "6" variants' P3-P6

KeypointMeta = tuple[tuple[str, ...], tuple[tuple[int, int], ...], tuple[int, ...]]  # names, skeleton, flip


def infer_strides(num_candidates: int, size: tuple[int, int]) -> tuple[int, ...]:
    """The stride set whose grids give `num_candidates` (N = sum of ceil(H/s) * ceil(W/s)); () if none."""
    h, w = size
    for strides in STRIDE_SETS:
        if sum(math.ceil(h / s) * math.ceil(w / s) for s in strides) == num_candidates:
            return strides
    return ()


def keypoint_meta(
    k: int,
    names: tuple[str, ...] | None,
    skeleton: tuple[tuple[int, int], ...] | None,
    flip_index: tuple[int, ...] | None,
) -> KeypointMeta:
    """Keypoint names, skeleton and flip index for K keypoints; given values are checked.

    Defaults: the COCO-17 names when K = 17, else kpt_0..; the COCO skeleton for the COCO names, else
    none; the flip index from the names (left_* <-> right_*, `spec.flip_index_for`), so unknown names
    mirror onto themselves.
    """
    if names is None:
        names = COCO_KEYPOINTS if k == len(COCO_KEYPOINTS) else tuple(f"kpt_{i}" for i in range(k))
    names = tuple(names)
    if len(names) != k:
        raise ConfigError(f"{len(names)} keypoint names given but the model predicts K = {k}; give {k} names")
    skeleton = tuple(skeleton) if skeleton is not None else COCO_SKELETON if names == COCO_KEYPOINTS else ()
    flip = tuple(flip_index) if flip_index is not None else flip_index_for(names)
    bad = [p for p in skeleton if not (0 <= p[0] < k and 0 <= p[1] < k)]
    if bad:
        raise ConfigError(
            f"skeleton pair {bad[0]} is outside 0..{k - 1} (K = {k}); use 0-based keypoint indices"
        )
    if sorted(flip) != list(range(k)):
        raise ConfigError(f"flip index {list(flip)} is not a permutation of 0..{k - 1} (K = {k})")
    return names, skeleton, flip
