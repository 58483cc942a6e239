"""`edgepose predict` through CliRunner: outputs, JSON = API, and one-line errors with nothing left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgepose.cli import app
from edgepose.runtime import PoseEstimator
from tests.helpers.runtime_onnx import build_model

runner = CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("cli_model") / "m.onnx")


def write_images(folder: Path) -> list[np.ndarray]:
    folder.mkdir()
    rng = np.random.default_rng(100)
    images = [rng.integers(60, 200, (h, w, 3), dtype=np.uint8) for h, w in ((100, 200), (80, 64), (120, 90))]
    for i, img in enumerate(images):
        cv2.imwrite(str(folder / f"img{i}.png"), img)
    (folder / "img1b.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")  # sorts between img1 and img2
    return images


def invoke(tmp_path: Path, *args: str) -> object:
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the default --out is relative: keep it inside tmp_path
    try:
        return runner.invoke(app, ["predict", *args])
    finally:
        os.chdir(cwd)


def test_folder_with_a_corrupt_image(tmp_path: Path, model: Path) -> None:
    images = write_images(tmp_path / "imgs")
    res = invoke(tmp_path, str(model), "imgs", "--save-json", "--conf", "0.05")
    assert res.exit_code == 0, res.output
    assert "warning: skipped imgs/img1b.jpg: not a readable image" in res.output
    assert "3 image(s)/frame(s)" in res.output and "1 skipped" in res.output
    out = tmp_path / "runs" / "predict"
    assert sorted(p.name for p in out.iterdir()) == [
        "files.json",
        "img0.png",
        "img1.png",
        "img2.png",
        "predictions.json",
    ]
    assert json.loads((out / "files.json").read_text()) == {
        "0": "imgs/img0.png",
        "1": "imgs/img1.png",
        "2": "imgs/img2.png",
    }
    # JSON equals the API on the same images (same ids: order processed).
    preds = json.loads((out / "predictions.json").read_text())
    est = PoseEstimator(model)
    api = [d for i, img in enumerate(images) for d in est(img, conf=0.05).to_coco(i)]
    assert len(preds) == len(api) >= 6
    for p, a in zip(preds, api, strict=True):
        assert p["image_id"] == a["image_id"] and p["category_id"] == 1
        np.testing.assert_allclose(p["bbox"], a["bbox"], atol=1e-4)
        np.testing.assert_allclose(p["keypoints"], a["keypoints"], atol=1e-4)
        assert p["score"] == pytest.approx(a["score"], abs=1e-5)
    annotated = cv2.imread(str(out / "img0.png"))
    assert annotated.shape == images[0].shape and not np.array_equal(annotated, images[0])
    # A second run does not overwrite the first.
    res = invoke(tmp_path, str(model), "imgs/img0.png")
    assert res.exit_code == 0 and (tmp_path / "runs" / "predict2" / "img0.png").is_file()


def test_video_is_annotated_with_frame_rate(tmp_path: Path, model: Path) -> None:
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for i in range(7):
        writer.write(np.full((64, 96, 3), 100 + i, np.uint8))
    writer.release()
    res = invoke(tmp_path, str(model), "clip.mp4", "--out", "o", "--show-fps", "--save-json")
    assert res.exit_code == 0, res.output
    assert "clip.mp4: 7 frames at" in res.output and "FPS" in res.output and "mean per image:" in res.output
    cap = cv2.VideoCapture(str(tmp_path / "o" / "clip.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7 and cap.get(cv2.CAP_PROP_FPS) == 10
    cap.release()
    files = json.loads((tmp_path / "o" / "files.json").read_text())
    assert files["6"] == "clip.mp4#frame=6" and len(files) == 7


def assert_failed(tmp_path: Path, res: object, *fragments: str) -> None:
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res.output
    for frag in fragments:
        assert frag in lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "o").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]  # no temp folder left


def test_missing_model(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    res = invoke(tmp_path, "nope.onnx", "a.png", "--out", "o")
    assert_failed(
        tmp_path, res, "error: nope.onnx: no such file; pass the .onnx written by `edgepose export`"
    )


def test_not_onnx(tmp_path: Path) -> None:
    (tmp_path / "w.onnx").write_bytes(b"\x00garbage" * 20)
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    res = invoke(tmp_path, "w.onnx", "a.png", "--out", "o")
    assert_failed(tmp_path, res, "w.onnx is not an ONNX model", "`edgepose export`")


def test_model_without_metadata(tmp_path: Path) -> None:
    build_model(tmp_path / "bare.onnx", metadata={})
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    res = invoke(tmp_path, "bare.onnx", "a.png", "--out", "o")
    assert_failed(tmp_path, res, "bare.onnx has no edgepose metadata", "edgepose export --from-onnx")


def test_unreadable_video(tmp_path: Path, model: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"not a video" * 50)
    res = invoke(tmp_path, str(model), "broken.mp4")
    assert_failed(tmp_path, res, "broken.mp4: not a readable video")


def test_unreadable_single_image(tmp_path: Path, model: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"nope")
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    res = invoke(tmp_path, str(model), "a.png", "x.jpg", "--out", "o")
    assert_failed(tmp_path, res, "x.jpg: not a readable image")


def test_bad_camera_index(tmp_path: Path, model: Path) -> None:
    res = invoke(tmp_path, str(model), "57")
    assert_failed(tmp_path, res, "camera 57 did not open")


def test_bad_threshold_and_missing_source(tmp_path: Path, model: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    assert_failed(
        tmp_path, invoke(tmp_path, str(model), "a.png", "--conf", "2"), "score threshold 2.0 is outside"
    )
    assert_failed(
        tmp_path, invoke(tmp_path, str(model), "nothere.png"), "nothere.png: no such file or folder"
    )


def test_iou_on_a_model_without_override_inputs_warns(tmp_path: Path) -> None:
    build_model(tmp_path / "baked.onnx", overrides=False)
    cv2.imwrite(str(tmp_path / "a.png"), np.full((100, 200, 3), 114, np.uint8))
    res = invoke(
        tmp_path, "baked.onnx", "a.png", "--iou", "0.6", "--conf", "0.5", "--out", "o", "--save-json"
    )
    assert res.exit_code == 0, res.output
    assert (
        "warning: baked.onnx has no iou_threshold input: --iou 0.6 is ignored (NMS uses 0.45)" in res.output
    )
    assert len(json.loads((tmp_path / "o" / "predictions.json").read_text())) == 2  # conf filtered in numpy


def test_existing_out_folder_is_not_overwritten(tmp_path: Path, model: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "mine.txt").write_text("precious")
    res = invoke(tmp_path, str(model), "a.png", "--out", "keep")
    assert res.exit_code == 1 and res.output.strip() == (
        "error: keep already exists and is not empty; pass --force to replace it, or choose another --out"
    )
    assert [p.name for p in (tmp_path / "keep").iterdir()] == ["mine.txt"]
    res = invoke(tmp_path, str(model), "a.png", "--out", "keep", "--force")
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "keep").iterdir()] == ["a.png"]


def test_missing_parent_folders_of_out_are_made(tmp_path: Path, model: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    res = invoke(tmp_path, str(model), "a.png", "--out", "runs/pi", "--save-json")  # a fresh clone: no runs/
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "runs" / "pi").iterdir()) == [
        "a.png", "files.json", "predictions.json"
    ]  # fmt: skip
