"""COCO OKS evaluation via pycocotools: perfect predictions, monotonic degradation, empty and bad input."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgepose.cocofmt import detections_to_coco
from edgepose.data.coco_eval import KeypointMetrics, evaluate_keypoints, points, signed_points
from edgepose.errors import DataError


def _gt_as_predictions(gt: dict, sigma: float = 0.0, seed: int = 130) -> list[dict]:
    rng = np.random.default_rng(seed)
    preds = []
    for a in gt["annotations"]:
        if a["num_keypoints"] == 0:  # COCO's protocol (synth version 2): unlabelled people are ignored
            continue
        kp = np.array(a["keypoints"], float).reshape(-1, 3)  # (K, 3)
        kp[:, :2] += rng.normal(0, sigma, (len(kp), 2)) * (kp[:, 2:] > 0)
        preds.append(
            {"image_id": a["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 1.0}
        )
    return preds


@pytest.fixture(scope="module")
def all_labelled(synth_dataset_factory: Callable[..., Path]) -> Path:
    """Generator version 1: keypoints on every person (most of synth_dataset's 128-px people are "small"
    and unlabelled under version 2's COCO protocol, which leaves these tests little to measure)."""
    return synth_dataset_factory(version=1)


def test_ground_truth_as_predictions_scores_one(all_labelled: Path) -> None:
    path = all_labelled / "annotations.json"
    gt = json.loads(path.read_text())
    m = evaluate_keypoints(path, _gt_as_predictions(gt))
    assert m.ap == pytest.approx(1.0) and m.ap50 == pytest.approx(1.0) and m.ap75 == pytest.approx(1.0)
    assert m.ar == pytest.approx(1.0)
    assert evaluate_keypoints(gt, _gt_as_predictions(gt)).ap == pytest.approx(1.0)  # dict input too
    assert set(m.as_dict()) == {"ap", "ap50", "ap75", "apm", "apl", "ar"}


def test_keypoint_noise_lowers_ap_monotonically(all_labelled: Path) -> None:
    gt = json.loads((all_labelled / "annotations.json").read_text())
    aps = [evaluate_keypoints(gt, _gt_as_predictions(gt, s)).ap for s in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)]
    assert aps[0] == pytest.approx(1.0)
    assert all(b < a for a, b in itertools.pairwise(aps)), aps
    assert aps[-1] < 0.3, aps


def test_people_without_keypoints_are_ignored_as_cocoeval_does(synth_dataset: Path) -> None:
    gt = json.loads((synth_dataset / "annotations.json").read_text())  # version 2: small people unlabelled
    # one unlabelled person per image (several junk poses between overlapping small people would depend on
    # COCOeval's greedy matching order)
    ignored = list({a["image_id"]: a for a in gt["annotations"] if a["num_keypoints"] == 0}.values())
    assert len(ignored) >= 3 and any(a["num_keypoints"] for a in gt["annotations"])
    perfect = [p | {"score": 0.5} for p in _gt_as_predictions(gt)]  # the labelled people only
    assert evaluate_keypoints(gt, perfect).ap == pytest.approx(1.0)

    def on(a: dict, where: str) -> dict:
        x, y, w, h = a["bbox"]
        px, py = (x + w / 2, y + h / 2) if where == "inside" else (0.0, 0.0)
        kp = [v for _ in range(17) for v in (px, py, 1.0)]
        return {"image_id": a["image_id"], "category_id": 1, "keypoints": kp, "score": 0.99}

    # a confident pose (ranked above every true one) on an unlabelled person matches it and is ignored:
    # neither a hit nor a false positive
    assert evaluate_keypoints(gt, perfect + [on(a, "inside") for a in ignored]).ap == pytest.approx(1.0)
    assert evaluate_keypoints(gt, perfect + [on(a, "corner") for a in ignored]).ap < 0.9  # elsewhere: FPs


def test_empty_predictions_score_zero(synth_dataset: Path) -> None:
    m = evaluate_keypoints(synth_dataset / "annotations.json", [])
    assert m == KeypointMetrics(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def test_evaluation_does_not_mutate_inputs(synth_dataset: Path) -> None:
    gt = json.loads((synth_dataset / "annotations.json").read_text())
    preds = _gt_as_predictions(gt, 1.0)
    gt_copy, preds_copy = json.dumps(gt), json.dumps(preds)
    evaluate_keypoints(gt, preds)
    assert json.dumps(gt) == gt_copy and json.dumps(preds) == preds_copy


def test_prediction_for_unknown_image_is_a_data_error(synth_dataset: Path) -> None:
    preds = [{"image_id": 999, "category_id": 1, "keypoints": [1.0, 1.0, 1.0] * 17, "score": 0.5}]
    with pytest.raises(DataError, match="image id 999"):
        evaluate_keypoints(synth_dataset / "annotations.json", preds)


def test_prediction_with_wrong_keypoint_count_is_a_data_error(synth_dataset: Path) -> None:
    preds = [{"image_id": 1, "category_id": 1, "keypoints": [1.0, 1.0, 1.0] * 16, "score": 0.5}]
    with pytest.raises(DataError, match=r"prediction 0 has 48 keypoint values, expected 51"):
        evaluate_keypoints(synth_dataset / "annotations.json", preds)


def test_detections_to_coco_format() -> None:
    boxes = np.array([[10, 20, 50, 100], [0, 0, 4, 4]], np.float32)
    kpts = np.arange(2 * 17 * 3, dtype=np.float32).reshape(2, 17, 3)
    res = detections_to_coco(4, boxes, np.array([0.9, 0.25]), kpts)
    assert len(res) == 2
    assert res[0]["image_id"] == 4 and res[0]["category_id"] == 1
    assert res[0]["bbox"] == [10.0, 20.0, 40.0, 80.0]
    assert res[0]["score"] == pytest.approx(0.9)
    assert res[1]["keypoints"] == pytest.approx(kpts[1].ravel().tolist())
    assert len(res[1]["keypoints"]) == 51
    assert detections_to_coco(1, np.zeros((0, 4)), np.zeros(0), np.zeros((0, 17, 3))) == []


def test_points_and_signed_points_read_like_the_tables() -> None:
    assert points(0.1412) == "14.1" and points(-1.0) == "n/a"
    assert signed_points(-0.0123) == "-1.2" and signed_points(0.0051) == "+0.5"
    # a difference that rounds to zero has no sign: "-0.0" read as a loss in the real-model table
    assert signed_points(-0.0004) == "0.0" and signed_points(0.0004) == "0.0" and signed_points(0.0) == "0.0"
