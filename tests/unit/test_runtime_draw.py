"""draw_poses: the paper's rule (keypoints below 0.5 and limbs touching them are not drawn)."""

from __future__ import annotations

import numpy as np

from edgepose.runtime import PoseResult, draw_poses
from edgepose.runtime.draw import BOX_COLOR


def make_result(confs: tuple[float, float, float], skeleton: tuple[tuple[int, int], ...]) -> PoseResult:
    kpts = np.array(
        [[[40, 100, confs[0]], [100, 100, confs[1]], [160, 100, confs[2]]]], np.float32
    )  # (1, 3, 3)
    return PoseResult(
        boxes=np.array([[20, 50, 180, 150]], np.float32),
        scores=np.array([0.87], np.float32),
        keypoints=kpts,
        keypoint_names=("a", "b", "c"),
        skeleton=skeleton,
        image_size=(200, 200),
    )


def lit(img: np.ndarray, x: int, y: int) -> bool:
    return bool(img[y, x].any())


def test_low_confidence_keypoints_and_their_limbs_are_not_drawn() -> None:
    black = np.zeros((200, 200, 3), np.uint8)
    result = make_result((0.9, 0.4, 0.9), ((0, 1), (1, 2), (0, 2)))
    img = draw_poses(black, result, boxes=False)
    assert img.shape == (200, 200, 3) and not black.any()  # a copy: the input is untouched
    assert lit(img, 40, 100) and lit(img, 160, 100)  # confident keypoints
    assert lit(img, 70, 100) and lit(img, 130, 100)  # limb 0-2 passes here...
    assert not lit(img, 100, 97) and not lit(img, 100, 103)  # ...but nothing around the 0.4 keypoint
    # Only the 0-2 limb: a straight line through y=100 plus two dots, no dot at x=100 (line only).
    assert not img[90:96].any() and not img[105:111].any()
    # At threshold 0.3 the middle keypoint and both of its limbs appear.
    img = draw_poses(black, result, kpt_thr=0.3, boxes=False)
    assert img[97:104, 97:104].any(axis=2).sum() > 20  # a filled dot at (100, 100)


def test_limb_to_a_hidden_keypoint_is_skipped() -> None:
    result = make_result((0.9, 0.2, 0.9), ((0, 1),))
    img = draw_poses(np.zeros((200, 200, 3), np.uint8), result, boxes=False)
    assert not lit(img, 70, 100)  # the 0-1 limb would cross here
    assert lit(img, 40, 100)


def test_box_is_drawn_on_gray_input() -> None:
    img = draw_poses(np.zeros((200, 200), np.uint8), make_result((0.9, 0.9, 0.9), ()), label="9.9 FPS")
    assert img.shape == (200, 200, 3)
    assert tuple(img[100, 20]) == BOX_COLOR and tuple(img[150, 100]) == BOX_COLOR  # left and bottom edges
    assert img[5:20, 5:60].any()  # the label
