"""Calibration reader: any size/format -> the model's exact input tensor; deterministic subsets; errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgepose.errors import CalibrationError
from edgepose.quant.calib import CalibrationSet, find_images, select_images
from edgepose.quant.options import CalibMethod
from edgepose.spec import INPUT_NAME, InputFormat, PoseSpec

SPEC = PoseSpec(input_size=(96, 128))  # (H, W): not square, so the letterbox pads


def _odd_images(d: Path) -> dict[str, np.ndarray]:
    d.mkdir()
    imgs = {
        "gray.png": np.full((40, 60), 200, np.uint8),  # grayscale
        "bgra.png": np.dstack([np.full((50, 50, 3), (10, 20, 30), np.uint8), np.zeros((50, 50), np.uint8)]),
        "thin.jpg": np.full((1, 300, 3), 90, np.uint8),  # 1 x 300
        "tall.png": np.full((500, 20, 3), 60, np.uint8),  # 500 x 20
        "deep.png": np.full((30, 30, 3), 40000, np.uint16),  # 16-bit
        "pic.webp": np.full((64, 48, 3), 128, np.uint8),
        "pic.bmp": np.full((20, 20, 3), 7, np.uint8),
    }
    for name, img in imgs.items():
        assert cv2.imwrite(str(d / name), img)
    (d / "notes.txt").write_text("not an image")
    return imgs


def test_reader_handles_any_size_and_format(tmp_path: Path) -> None:
    _odd_images(tmp_path / "c")
    cs = CalibrationSet(tmp_path / "c", SPEC)
    assert [p.name for p in cs.paths] == sorted(
        ["gray.png", "bgra.png", "thin.jpg", "tall.png", "deep.png", "pic.webp", "pic.bmp"]
    )
    reader = cs.reader()
    feeds = [reader.get_next() for _ in range(len(cs))]
    assert reader.get_next() is None
    for f in feeds:
        assert set(f) == {INPUT_NAME}
        assert f[INPUT_NAME].shape == (1, 3, 96, 128) and f[INPUT_NAME].dtype == np.float32
    by_name = dict(zip([p.name for p in cs.paths], feeds, strict=True))
    gray = by_name["gray.png"][INPUT_NAME]
    # 40x60 -> scale 2.133 -> 85x128 centred: rows 5..89 image, the rest letterbox grey 114.
    np.testing.assert_allclose(gray[0, :, 48, 64], [200 / 255] * 3, atol=1e-6)
    np.testing.assert_allclose(gray[0, :, 0, 64], [114 / 255] * 3, atol=1e-6)
    bgra = by_name["bgra.png"][INPUT_NAME]
    np.testing.assert_allclose(
        bgra[0, :, 48, 64], np.array([30, 20, 10]) / 255, atol=1e-6
    )  # RGB, alpha dropped
    np.testing.assert_allclose(
        by_name["deep.png"][INPUT_NAME][0, :, 48, 64], [(40000 >> 8) / 255] * 3, atol=1e-6
    )
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()[INPUT_NAME], feeds[0][INPUT_NAME])


def test_uint8_models_get_uint8_tensors(tmp_path: Path) -> None:
    _odd_images(tmp_path / "c")
    t = next(CalibrationSet(tmp_path / "c", SPEC.replace(input_format=InputFormat.UINT8)).tensors())
    assert t.dtype == np.uint8 and t.shape == (1, 3, 96, 128) and int(t[0, 0, 0, 0]) == 114


def test_subset_is_sorted_evenly_spread_and_deterministic(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i:02d}.jpg" for i in range(10)]
    assert select_images(paths, 4) == [paths[i] for i in (0, 3, 6, 9)]
    assert select_images(paths, 10) == paths
    assert select_images(paths, None) == paths
    assert len(select_images([tmp_path / f"{i:04d}.jpg" for i in range(800)], None)) == 500


def test_finds_images_in_dir_images(tmp_path: Path) -> None:
    (tmp_path / "ds" / "images").mkdir(parents=True)
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / "ds" / "images" / f"{i}.jpg"), np.zeros((8, 8, 3), np.uint8))
    assert [p.name for p in find_images(tmp_path / "ds")] == ["0.jpg", "1.jpg", "2.jpg"]


@pytest.mark.parametrize(
    ("setup", "num", "message"),
    [
        ("empty", None, "no images in"),
        ("missing", None, "does not exist"),
        ("file", None, "is a file, expected a folder"),
        ("two", 5, "--num-calib 5 asks for more images than"),
        ("two", 0, "--num-calib must be >= 1"),
        ("corrupt", None, "cannot decode calibration image"),
    ],
)
def test_calibration_errors_are_one_line(tmp_path: Path, setup: str, num: int | None, message: str) -> None:
    d = tmp_path / "c"
    if setup != "missing":
        d.mkdir() if setup != "file" else d.write_text("x")
    if setup == "two":
        for i in range(2):
            cv2.imwrite(str(d / f"{i}.png"), np.zeros((8, 8), np.uint8))
    if setup == "corrupt":
        (d / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(CalibrationError, match=message.replace("(", r"\(")) as exc:
        list(CalibrationSet(d, SPEC, num).tensors())
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("method", [CalibMethod.PERCENTILE, CalibMethod.ENTROPY])
def test_histogram_calibration_prints_nothing(
    method: CalibMethod, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """onnxruntime's histogram calibrators print progress on stdout; a library call must not."""
    from edgepose.quant.graph import body_model, load_float_model
    from edgepose.quant.ortsteps import calibrate
    from tests.helpers.quant_graphs import build_pose_model, make_images

    model, spec = load_float_model(build_pose_model(tmp_path / "m.onnx"))
    calib = CalibrationSet(make_images(tmp_path / "calib", n=4), spec)
    cache = calibrate(body_model(model), calib, method, tmp_path / "work")
    out, err = capfd.readouterr()
    assert cache.is_file() and json.loads(cache.read_text())  # ranges were written
    assert out == "" and err == ""
