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
    assert set(metrics) == {"ap", "ap50", "ap75", "apm", "apl", "ar", "ap_scale"}
    assert metrics["ap_scale"].startswith("fraction in [0, 1]")  # the file keeps fractions and says so
    assert metrics["ap"] == pytest.approx(1.0)
    assert metrics["ap50"] == pytest.approx(1.0)
    assert metrics["ar"] == pytest.approx(1.0)
    for header in ("AP", "AP50", "AP75", "APM", "APL", "AR"):
        assert header in result.stdout
    # The table is in COCO points, as bench prints it: 100.0, not 1.0000.
    assert result.stdout.count("100.0") >= 4 and "1.0000" not in result.stdout
    assert "COCO points (x100)" in result.stdout
    n = len(_gt_as_predictions(gt))
    assert f"pred.json vs annotations.json: {n} predictions" in result.stdout.splitlines()  # not wrapped


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
            json.dumps(
                [{"image_id": i, "category_id": 1, "keypoints": [0] * 51, "score": 0.5} for i in (3, 0, 99)]
            ),
            [
                "pred.json: image_id 0, 99 (2 of the 3 ids in the file) not in the ground truth (ids 1..12)",
                "`edgepose predict MODEL GT_DIR --save-json` writes its image ids",
            ],
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


@pytest.fixture(scope="module")
def oracle(synth_dataset_factory, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A one-image COCO dataset (ids start at 1) and a model that predicts its ground truth exactly."""
    from edgepose.spec import PoseSpec
    from tests.helpers.runtime_onnx import build_model, oracle_rows

    ds = synth_dataset_factory(num_images=1, size=128, seed=102)
    spec = PoseSpec(name="oracle", input_size=(128, 128), max_det=20, version="test")
    return ds, build_model(tmp_path_factory.mktemp("oracle") / "oracle.onnx", spec, oracle_rows(ds))


@pytest.mark.parametrize("folder", ["dataset", "images"])
def test_predict_on_a_coco_folder_writes_its_ids_so_val_scores_it(
    oracle: tuple[Path, Path], tmp_path: Path, folder: str
) -> None:
    ds, model = oracle
    source = ds if folder == "dataset" else ds / "images"
    out = tmp_path / "p"
    res = runner.invoke(app, ["predict", str(model), str(source), "--save-json", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"predictions.json uses the image ids of {source}" in " ".join(res.output.split())
    preds = json.loads((out / "predictions.json").read_text())
    assert {p["image_id"] for p in preds} == {1}  # the ground truth's id of 000000.jpg, not 0
    assert json.loads((out / "files.json").read_text()) == {"1": str(ds / "images" / "000000.jpg")}
    res = runner.invoke(app, ["val", "--pred", str(out / "predictions.json"), "--gt", str(ds)])
    assert res.exit_code == 0, res.output
    assert res.stdout.count("100.0") >= 4 and "warning" not in res.output  # AP, AP50, AP75, AR


def test_ids_numbered_for_other_images_are_named_not_scored_zero(synth_dataset: Path, tmp_path: Path) -> None:
    """Results numbered in processing order of other files (ids that exist in the ground truth, for the
    wrong images): files.json beside them gives it away."""
    gt = json.loads((synth_dataset / "annotations.json").read_text())
    names = {img["id"]: img["file_name"] for img in gt["images"]}
    preds = _gt_as_predictions(synth_dataset / "annotations.json")
    (tmp_path / "predictions.json").write_text(json.dumps(preds))
    files = {str(i): f"photos/{names[1 + i % len(names)]}" for i in names}  # every id names the next file
    (tmp_path / "files.json").write_text(json.dumps(files))
    args = ["val", "--pred", str(tmp_path / "predictions.json"), "--gt", str(synth_dataset)]
    ids = sorted({p["image_id"] for p in preds})  # the images with labelled people in them
    n, first = len(ids), ids[0]
    assert_one_line_error(
        runner.invoke(app, args),
        f"image_id {first} is photos/{names[1 + first % len(names)]} in files.json but {names[first]} in the "
        "ground truth",
        f"({n} of {n} ids name other files)",
        "re-run `edgepose predict MODEL GT_DIR --save-json`",
    )
    (tmp_path / "files.json").write_text(json.dumps({str(i): f"photos/{f}" for i, f in names.items()}))
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output


def test_ground_truth_images_without_predictions_are_named(synth_dataset: Path, tmp_path: Path) -> None:
    gt = json.loads((synth_dataset / "annotations.json").read_text())
    names = {img["id"]: img["file_name"] for img in gt["images"]}
    with_people = sorted({a["image_id"] for a in gt["annotations"] if a["num_keypoints"] > 0})
    preds = [p for p in _gt_as_predictions(synth_dataset / "annotations.json") if p["image_id"] > 3]
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    args = ["val", "--pred", str(tmp_path / "pred.json"), "--gt", str(synth_dataset)]
    # A results file alone: the images with people and no prediction (the model may have found nobody).
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    missing = [i for i in with_people if i <= 3]
    assert missing  # the seed puts labelled people in some of the first three images
    shown = ", ".join(map(str, missing))
    assert (
        f"warning: {len(missing)} of 12 ground-truth images have labelled people in them and no prediction "
        f"(image_id {shown}): every person in them counts as missed"
    ) in " ".join(res.stderr.split())
    # With predict's files.json beside it: exactly the images that were not predicted (an image predicted
    # with nobody found is not missing).
    files = {str(i): f"photos/{names[i]}" for i in names if i not in (2, 3)}
    (tmp_path / "files.json").write_text(json.dumps(files))
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (
        "warning: 2 of 12 ground-truth images were not predicted (image_id 2, 3): every person in them "
        "counts as missed"
    ) in " ".join(res.stderr.split())


def test_val_weights_reports_progress_and_prints_points(
    tiny_checkpoint: Path, synth_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgepose.data.coco import read_coco
    from edgepose.train import evaluate

    data = read_coco(synth_dataset / "annotations.json")
    done: list[int] = []
    evaluate.predict_checkpoint(tiny_checkpoint, data, batch=5, progress=done.append)
    assert done == [5, 10, 12]  # after each batch, up to every image
    real, seen = evaluate.predict_checkpoint, []

    def spy(*args: object, progress: object = None, **kwargs: object) -> list[dict]:
        seen.append(progress)
        return real(*args, progress=progress, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(evaluate, "predict_checkpoint", spy)
    res = runner.invoke(app, ["val", "--weights", str(tiny_checkpoint), "--data", str(synth_dataset)])
    assert res.exit_code == 0, res.output
    assert len(seen) == 1 and callable(seen[0])  # the command draws a bar from it
    assert "COCO points (x100)" in res.stdout and "0.0000" not in res.stdout
