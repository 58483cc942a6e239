"""The comparison behind scripts/check_aarch64.py (scripts/aarch64_compare.py), on hand-made COCO results."""

from __future__ import annotations

import copy
import math
from types import ModuleType

import pytest

from tests.helpers.scripts import load_script


@pytest.fixture(scope="module")
def ca() -> ModuleType:
    return load_script("aarch64_compare")


FILES = {"0": "/d/a.jpg", "1": "/d/b.jpg", "2": "/d/empty.jpg"}


def _det(image_id: int, x: float, score: float) -> dict:
    kpts = [v for k in range(17) for v in (x + k, 20.0 + 2 * k, 0.9 - 0.01 * k)]
    return {
        "image_id": image_id,
        "category_id": 1,
        "bbox": [x, 10.0, 30.5, 60.25],
        "score": score,
        "keypoints": kpts,
    }


PREDS = [_det(0, 5.0, 0.91), _det(0, 50.0, 0.62), _det(1, 12.5, 0.33)]


def _compare(ca: ModuleType, arm_preds: list[dict], arm_files: dict | None = None):
    host = ca.from_coco(PREDS, FILES)
    arm = ca.from_coco(arm_preds, FILES if arm_files is None else arm_files)
    d = ca.compare_detections("float", host, arm)
    return d, ca.tolerance_failures(d, ca.FLOAT_TOL_PX, ca.FLOAT_TOL_SCORE)


def test_from_coco_converts_boxes_and_keeps_empty_images(ca: ModuleType) -> None:
    dets = ca.from_coco(PREDS, FILES)
    assert [len(dets[f]) for f in ("/d/a.jpg", "/d/b.jpg", "/d/empty.jpg")] == [2, 1, 0]
    assert dets["/d/a.jpg"][1].box == (50.0, 10.0, 80.5, 70.25)  # x, y, w, h -> x1, y1, x2, y2
    assert len(dets["/d/b.jpg"][0].keypoints) == 51


def test_identical_predictions_pass(ca: ModuleType) -> None:
    d, failures = _compare(ca, copy.deepcopy(PREDS))
    assert failures == []
    assert d.identical and (d.max_box, d.max_kpt, d.max_score) == (0.0, 0.0, 0.0)
    assert (d.images, d.host_dets, d.arm_dets) == (3, 3, 3)


def test_shift_within_tolerance_passes_but_is_not_identical(ca: ModuleType) -> None:
    arm = copy.deepcopy(PREDS)
    arm[1]["keypoints"][0] += 0.004
    arm[2]["score"] += 5e-5
    d, failures = _compare(ca, arm)
    assert failures == [] and not d.identical
    assert d.max_kpt == pytest.approx(0.004) and d.max_score == pytest.approx(5e-5)


def test_keypoint_shift_of_0_02_px_fails_with_the_numbers(ca: ModuleType) -> None:
    arm = copy.deepcopy(PREDS)
    arm[1]["keypoints"][3 * 4 + 1] += 0.02  # y of keypoint 4 of the second person in a.jpg
    d, failures = _compare(ca, arm)
    assert d.max_kpt == pytest.approx(0.02) and d.max_box == 0.0 and d.max_score == 0.0
    assert failures == ["float: max keypoint difference 0.02 px > 0.01 px at a.jpg detection 1"]


def test_keypoint_confidence_counts_as_a_score(ca: ModuleType) -> None:
    arm = copy.deepcopy(PREDS)
    arm[0]["keypoints"][2] -= 3e-4  # confidence of keypoint 0: not a pixel value
    d, failures = _compare(ca, arm)
    assert d.max_kpt == 0.0 and d.max_score == pytest.approx(3e-4)
    assert len(failures) == 1 and failures[0].startswith("float: max score difference 0.0003 > 0.0001")


def test_box_shift_fails(ca: ModuleType) -> None:
    arm = copy.deepcopy(PREDS)
    arm[2]["bbox"][2] += 0.05  # width: moves x2
    d, failures = _compare(ca, arm)
    assert d.max_box == pytest.approx(0.05)
    assert failures == ["float: max box difference 0.05 px > 0.01 px at b.jpg detection 0"]


def test_different_detection_count_fails(ca: ModuleType) -> None:
    d, failures = _compare(ca, PREDS[1:])  # a.jpg lost its first person on aarch64
    assert d.host_dets == 3 and d.arm_dets == 2 and not d.identical
    assert failures[0] == "a.jpg: 2 detections on x86-64, 1 on aarch64"


def test_a_swapped_order_fails(ca: ModuleType) -> None:
    arm = copy.deepcopy(PREDS)
    arm[0], arm[1] = arm[1], arm[0]
    d, failures = _compare(ca, arm)
    assert d.max_box == pytest.approx(45.0) and d.max_score == pytest.approx(0.29)
    assert len(failures) == 3 and all("at a.jpg detection 0" in f for f in failures)


def test_missing_image_fails(ca: ModuleType) -> None:
    files = {"0": "/d/a.jpg", "1": "/d/b.jpg"}
    _, failures = _compare(ca, copy.deepcopy(PREDS), files)
    assert failures == ["different image sets: 3 vs 2 images (/d/empty.jpg on one side)"]


def test_nan_is_beyond_tolerance(ca: ModuleType) -> None:
    arm = copy.deepcopy(PREDS)
    arm[0]["keypoints"][0] = float("nan")
    d, failures = _compare(ca, arm)
    assert math.isnan(d.max_kpt) and not d.identical
    assert failures == ["float: max keypoint difference nan px > 0.01 px at a.jpg detection 0"]
