"""`edgepose val --pred --gt`: COCO OKS metrics table, JSON output, and bad prediction files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgepose.cli import app
from tests.helpers.errors import assert_one_line_error

runner = CliRunner()


def _gt_as_predictions(gt: Path) -> list[dict]:
    data = json.loads(gt.read_text())
    return [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "keypoints": a["keypoints"],
            "score": 1.0,
        }
        for a in data["annotations"]
        if a.get("num_keypoints", 1) > 0 and not a.get("iscrowd", 0)
    ]


def test_ground_truth_as_predictions_gives_ap_one(synth_dataset: Path, tmp_path: Path) -> None:
    gt = synth_dataset / "annotations.json"
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(_gt_as_predictions(gt)))
    out = tmp_path / "metrics.json"
    result = runner.invoke(app, ["val", "--pred", str(pred), "--gt", str(gt), "--json", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"ap", "ap50", "ap75", "apm", "apl", "ar"}
    assert metrics["ap"] == pytest.approx(1.0)
    assert metrics["ap50"] == pytest.approx(1.0)
    assert metrics["ar"] == pytest.approx(1.0)
    for header in ("AP", "AP50", "AP75", "APM", "APL", "AR"):
        assert header in result.stdout
    assert result.stdout.count("1.0000") >= 4  # AP, AP50, AP75, AR at least (APM/APL may have no people)


def test_worse_predictions_lower_ap(synth_dataset: Path, tmp_path: Path) -> None:
    gt = synth_dataset / "annotations.json"
    preds = _gt_as_predictions(gt)
    for p in preds:  # shift every keypoint by 3 px: OKS < 1, AP at the strict thresholds drops
        p["keypoints"] = [v + 3 if i % 3 < 2 else v for i, v in enumerate(p["keypoints"])]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(preds))
    out = tmp_path / "m.json"
    # --gt also takes the dataset folder that holds annotations.json
    result = runner.invoke(app, ["val", "--pred", str(pred), "--gt", str(synth_dataset), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert 0.0 < json.loads(out.read_text())["ap"] < 0.99


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("{not json", ["pred.json", "not valid JSON"]),
        ('{"image_id": 1}', ["pred.json", "expected a JSON list of COCO results, got a dict"]),
        ('[{"image_id": 1, "keypoints": []}]', ["pred.json", "result 0 lacks score"]),
        (
            '[{"image_id": 1, "category_id": 1, "keypoints": [1, 2, 1], "score": 0.5}]',
            ["pred.json", "result 0 has 3 keypoint values, expected 51"],
        ),
        (
            json.dumps([{"image_id": 1, "category_id": 1, "keypoints": ["1"] * 51, "score": 0.5}]),
            ["pred.json", "result 0 has a keypoint or score that is not a finite number"],
        ),
        (
            '[{"image_id": 1, "category_id": 1, "keypoints": [' + ", ".join(["1"] * 51) + '], "score": NaN}]',
            ["pred.json", "result 0 has a keypoint or score that is not a finite number"],
        ),
        (
            json.dumps([{"image_id": 987654, "category_id": 1, "keypoints": [0] * 51, "score": 0.5}]),
            ["pred.json", "result 0 has image_id 987654, which is not in the ground truth"],
        ),
    ],
)
def test_bad_prediction_file(synth_dataset: Path, tmp_path: Path, content: str, fragments: list[str]) -> None:
    pred = tmp_path / "pred.json"
    pred.write_text(content)
    gt = synth_dataset / "annotations.json"
    out = tmp_path / "m.json"
    result = runner.invoke(app, ["val", "--pred", str(pred), "--gt", str(gt), "--json", str(out)])
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_missing_files_and_missing_source(synth_dataset: Path, tmp_path: Path) -> None:
    gt = synth_dataset / "annotations.json"
    result = runner.invoke(app, ["val", "--pred", str(tmp_path / "p.json"), "--gt", str(gt)])
    assert_one_line_error(result, "p.json", "prediction file not found")
    result = runner.invoke(app, ["val", "--pred", str(gt), "--gt", str(tmp_path / "gt.json")])
    assert_one_line_error(result, "gt.json", "annotation file not found")
    result = runner.invoke(app, ["val", "--gt", str(gt)])
    assert_one_line_error(result, "give exactly one of --pred")
