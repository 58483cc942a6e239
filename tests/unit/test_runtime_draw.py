"""draw_poses: the paper's rule (keypoints below 0.5 and limbs touching them are not drawn)."""

from __future__ import annotations

import numpy as np

from edgepose.runtime import PoseResult, draw_poses
from edgepose.runtime.draw import BANNER_COLOR, BOX_COLOR, DrawStyle


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


def _top_edge_result(h: int, w: int) -> PoseResult:
    """One person whose box touches the top-left corner; keypoints hidden (only the box and its tag)."""
    return PoseResult(
        boxes=np.array([[4, 0, w // 3, h // 2]], np.float32),
        scores=np.array([0.91], np.float32),
        keypoints=np.zeros((1, 3, 3), np.float32),
        keypoint_names=("a", "b", "c"),
        skeleton=(),
        image_size=(h, w),
    )


def test_line_width_and_font_scale_grow_with_the_image() -> None:
    small, photo, hd = (
        DrawStyle.for_image(256, 256),
        DrawStyle.for_image(427, 640),
        DrawStyle.for_image(1080, 1920),
    )
    assert (small.thick, photo.thick, hd.thick) == (1, 2, 5)
    assert small.font_scale < photo.font_scale < hd.font_scale and hd.text_thick >= 2
    widths = []
    for h, w in ((256, 256), (1080, 1920)):
        img = draw_poses(np.full((h, w, 3), 90, np.uint8), _top_edge_result(h, w))
        row = img[h // 4, :50]  # across the box's left edge at x = 4
        widths.append(int((row == BOX_COLOR).all(axis=1).sum()))
    assert widths[0] == 1 and widths[1] >= 5


def test_score_tag_at_the_top_edge_is_whole_and_inside_the_box() -> None:
    img = draw_poses(np.full((427, 640, 3), 90, np.uint8), _top_edge_result(427, 640))
    text = np.argwhere((img[:60, :120] == 0).all(axis=2))  # black text on the tag
    assert len(text) > 20
    (top, left), right = text.min(axis=0), text[:, 1].max()
    above = (img[top - 2, left : right + 1] == BOX_COLOR).all(axis=1)  # (top - 1 is anti-aliased)
    assert top >= 2 and above.mean() > 0.9  # tag fill above the text: the text is not cut by the edge
    assert top < 40  # just inside the box's top edge, not pushed down the image


def test_fps_banner_never_covers_a_score_tag() -> None:
    grey = np.full((427, 640, 3), 90, np.uint8)
    plain = draw_poses(grey, _top_edge_result(427, 640))
    with_fps = draw_poses(grey, _top_edge_result(427, 640), label="31.2 FPS")
    banner = np.argwhere((with_fps == BANNER_COLOR).all(axis=2))
    assert len(banner) > 100
    by2 = banner[:, 0].max()
    tag_text = np.argwhere((with_fps[:, :200] == 0).all(axis=2))
    # the whole score text is still drawn (same ink as without the banner), below the banner
    assert len(tag_text) == int((plain[:, :200] == 0).all(axis=2).sum())
    assert tag_text[:, 0].min() > by2
