"""PoseEstimator on hand-built end-to-end graphs: known input -> known output in original pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepose.errors import ConfigError, DataError
from edgepose.runtime import PoseEstimator, preprocess
from edgepose.spec import InputFormat
from tests.helpers.runtime_onnx import SMALL_SPEC, build_model

GREY = 114  # the graph scales scores by mean brightness / 114: a 114-grey image keeps the table's scores

# The 64 x 64 network sees a 100 x 200 image at scale 0.32 with 16 px of padding above and below:
# x = u / 0.32, y = (v - 16) / 0.32, clipped to the image. Rows 0-2 of SMALL_ROWS pass the 0.25 default.
EXPECTED_BOXES = np.array(
    [[31.25, 12.5, 93.75, 75.0], [187.5, 90.625, 200.0, 100.0], [15.625, 3.125, 46.875, 34.375]]
)
EXPECTED_SCORES = np.array([0.9, 0.6, 0.3])
EXPECTED_KPTS = np.array(
    [
        [[100.0, 50.0, 0.9], [0.0, 0.0, 0.8], [62.5, 43.75, 0.3]],
        [[193.75, 100.0, 0.7], [200.0, 100.0, 0.6], [156.25, 75.0, 0.2]],
        [[31.25, 12.5, 0.5], [34.375, 15.625, 0.5], [37.5, 18.75, 0.5]],
    ]
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("rt_models")
    build_model(d / "dynamic.onnx")
    build_model(d / "fixed1.onnx", batch=1)
    build_model(d / "fixed2.onnx", batch=2)
    build_model(d / "baked.onnx", overrides=False)
    build_model(d / "uint8.onnx", SMALL_SPEC.replace(input_format=InputFormat.UINT8))
    return d


@pytest.fixture(scope="module")
def est(model_dir: Path) -> PoseEstimator:
    return PoseEstimator(model_dir / "dynamic.onnx", threads=1)


def grey(h: int, w: int, value: int = GREY) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def test_known_input_maps_back_to_known_pixels(est: PoseEstimator) -> None:
    r = est(grey(100, 200))
    assert r.boxes.dtype == np.float32 and r.boxes.shape == (3, 4)
    np.testing.assert_allclose(r.boxes, EXPECTED_BOXES, atol=1e-4)
    np.testing.assert_allclose(r.scores, EXPECTED_SCORES, atol=1e-4)
    np.testing.assert_allclose(r.keypoints, EXPECTED_KPTS, atol=1e-4)
    assert r.keypoint_names == ("a", "b", "c") and r.skeleton == ((0, 1), (1, 2))
    assert r.image_size == (100, 200) and len(r) == 3
    dets = list(r)
    assert dets[1].score == pytest.approx(0.6, abs=1e-4) and dets[1].keypoints.shape == (3, 3)


def test_to_coco_numbers(est: PoseEstimator) -> None:
    coco = est(grey(100, 200)).to_coco(7)
    assert [c["image_id"] for c in coco] == [7, 7, 7] and {c["category_id"] for c in coco} == {1}
    np.testing.assert_allclose(coco[0]["bbox"], [31.25, 12.5, 62.5, 62.5], atol=1e-4)
    np.testing.assert_allclose(coco[0]["keypoints"], EXPECTED_KPTS[0].reshape(-1), atol=1e-4)
    assert coco[2]["score"] == pytest.approx(0.3, abs=1e-4)


@pytest.mark.parametrize(
    "image",
    [
        np.full((100, 200), GREY, np.uint8),
        np.full((100, 200, 1), GREY, np.uint8),
        np.dstack([grey(100, 200), np.zeros((100, 200), np.uint8)]),  # BGRA, transparent
        np.full((100, 200, 3), GREY * 257, np.uint16),
    ],
    ids=["gray2d", "gray3d", "bgra", "uint16"],
)
def test_other_layouts_give_the_same_people(est: PoseEstimator, image: np.ndarray) -> None:
    r = est(image)
    np.testing.assert_allclose(r.boxes, EXPECTED_BOXES, atol=1e-4)
    np.testing.assert_allclose(r.keypoints, EXPECTED_KPTS, atol=1e-4)


@pytest.mark.parametrize(
    ("h", "w", "x_scale", "pad_y"),
    [(1, 1, 1 / 64, None), (1, 4000, 0.016, 31.0), (3000, 2, None, None)],
    ids=["1x1", "1x4000", "3000x2"],
)
def test_extreme_sizes_stay_inside_the_image(
    est: PoseEstimator, h: int, w: int, x_scale: float | None, pad_y: float | None
) -> None:
    r = est(grey(h, w))
    k = est.spec.num_keypoints
    assert (
        r.boxes.shape == (len(r), 4) and r.keypoints.shape == (len(r), k, 3) and r.scores.shape == (len(r),)
    )
    assert len(r) >= 1
    assert (r.boxes[:, [0, 2]] >= 0).all() and (r.boxes[:, [0, 2]] <= w).all()
    assert (r.boxes[:, [1, 3]] >= 0).all() and (r.boxes[:, [1, 3]] <= h).all()
    assert (r.keypoints[..., 0] <= w).all() and (r.keypoints[..., 1] <= h).all() and (r.keypoints >= 0).all()
    if w == 4000:  # 4000 -> 64 wide (scale 0.016), 1 -> 1 high at row 31: x = u / 0.016
        np.testing.assert_allclose(r.boxes[0], [625.0, 0.0, 1875.0, 1.0], atol=1e-3)


def test_rgb_flag_swaps_channels() -> None:
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 0], bgr[..., 2] = 10, 200  # blue 10, red 200
    t_bgr, _ = preprocess(bgr, SMALL_SPEC)
    t_rgb, info = preprocess(bgr, SMALL_SPEC, rgb=True)
    assert t_bgr.shape == (1, 3, 64, 64) and t_bgr.dtype == np.float32
    assert t_bgr[0, 0, 32, 32] == pytest.approx(200 / 255) and t_bgr[0, 2, 32, 32] == pytest.approx(10 / 255)
    assert t_rgb[0, 0, 32, 32] == pytest.approx(10 / 255)
    assert info.scale_x == 8.0


def test_uint8_model_matches_float_model(model_dir: Path, est: PoseEstimator) -> None:
    est8 = PoseEstimator(model_dir / "uint8.onnx")
    tensor, _ = preprocess(grey(30, 40), est8.spec)
    assert tensor.dtype == np.uint8 and tensor.max() == GREY
    img = grey(100, 200, 150)
    a, b = est8(img), est(img)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


@pytest.mark.parametrize("name", ["dynamic.onnx", "fixed1.onnx", "fixed2.onnx"])
def test_batch_equals_single_calls(model_dir: Path, name: str) -> None:
    est = PoseEstimator(model_dir / name)
    # Brightness changes the scores, so these three images hold different numbers of people.
    images = [grey(100, 200), grey(50, 60, 40), np.full((300, 200), 255, np.uint8)]
    batch = est.predict_batch(images, conf=0.15)
    single = [est(im, conf=0.15) for im in images]
    assert [len(r) for r in single] == [3, 2, 4]
    for b, s in zip(batch, single, strict=True):
        assert b.image_size == s.image_size
        np.testing.assert_allclose(b.boxes, s.boxes, atol=1e-5)
        np.testing.assert_allclose(b.scores, s.scores, atol=1e-5)
        np.testing.assert_allclose(b.keypoints, s.keypoints, atol=1e-5)
    assert batch[0].timings is not None and batch[0].timings.batch_size == 3
    assert est.batch_size == {"dynamic.onnx": None, "fixed1.onnx": 1, "fixed2.onnx": 2}[name]
    assert est.predict_batch([]) == []


def test_threshold_overrides_change_counts(est: PoseEstimator) -> None:
    img = grey(100, 200)
    counts = [len(est(img, conf=c)) for c in (0.05, 0.25, 0.5, 0.95)]
    assert counts == [4, 3, 2, 0]
    assert len(est(img)) == 3  # the baked-in 0.25
    assert len(est(img, conf=0.05, max_det=2)) == 2
    assert len(est(img, iou=0.7)) == 3
    t = est.last_timings
    assert t is not None and t.inference_ms > 0 and t.total_ms >= t.inference_ms and t.batch_size == 1


def test_baked_thresholds_filter_in_numpy(model_dir: Path) -> None:
    est = PoseEstimator(model_dir / "baked.onnx")
    assert not est.supports_override("score_threshold")
    img = grey(100, 200)
    assert [len(est(img, conf=c)) for c in (0.05, 0.25, 0.5, 0.95)] == [3, 3, 2, 0]  # can only tighten
    assert len(est(img, max_det=1)) == 1
    np.testing.assert_allclose(est(img, conf=0.5).scores, [0.9, 0.6], atol=1e-4)


def test_bad_call_arguments_are_one_line_errors(est: PoseEstimator) -> None:
    with pytest.raises(ConfigError, match=r"score threshold 1.5 is outside \[0, 1\]"):
        est(grey(10, 10), conf=1.5)
    with pytest.raises(ConfigError, match=r"max_det 9 is outside \[1, 8\].*--max-det 9"):
        est(grey(10, 10), max_det=9)
    with pytest.raises(DataError, match="dtype is float32, expected uint8"):
        est(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(DataError, match=r"shape \(3, 64, 64\)"):
        est(np.zeros((3, 64, 64), np.uint8))
    with pytest.raises(DataError, match="no pixels"):
        est(np.zeros((0, 5, 3), np.uint8))
