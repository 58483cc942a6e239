"""Augmentations move keypoints exactly with the pixels: flip, affine, mosaic; the dataset emits targets."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.spec import COCO_FLIP_INDEX, COCO_KEYPOINTS
from edgepose.train.augment import MIN_BOX_PX, PAD_VALUE, Sample, augment, hflip, mosaic, warp
from edgepose.train.options import AugmentConfig

K = len(COCO_KEYPOINTS)


def _sample(h: int = 40, w: int = 60, seed: int = 0) -> Sample:
    """An image with one person whose keypoint 0 (nose) sits on a single white pixel."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.uint8)
    kpts = np.zeros((1, K, 3), np.float32)
    kpts[0, :, 0] = rng.uniform(10, 30, K)
    kpts[0, :, 1] = rng.uniform(5, 35, K)
    kpts[0, :, 2] = 2
    kpts[0, 3] = 0  # an unlabelled keypoint
    kpts[0, 0, :2] = (20.5, 10.5)  # centre of pixel (20, 10)
    image[10, 20] = 255
    boxes = np.array([[8.0, 4.0, 32.0, 36.0]], np.float32)
    return Sample(image, boxes, kpts)


def test_hflip_mirrors_x_exactly_and_swaps_left_right() -> None:
    s = _sample()
    f = hflip(s, COCO_FLIP_INDEX)
    w = s.image.shape[1]
    np.testing.assert_array_equal(f.image, s.image[:, ::-1])
    assert f.image[10, w - 1 - 20, 0] == 255  # the nose pixel moved to x' = W - 1 - 20 (pixel index)
    li, ri = COCO_KEYPOINTS.index("left_wrist"), COCO_KEYPOINTS.index("right_wrist")
    # The new left wrist is the mirrored old right wrist: x' = W - x, y unchanged.
    assert f.kpts[0, li, 0] == pytest.approx(w - s.kpts[0, ri, 0])
    assert f.kpts[0, li, 1] == s.kpts[0, ri, 1]
    assert f.kpts[0, ri, 0] == pytest.approx(w - s.kpts[0, li, 0])
    assert f.kpts[0, 0, 0] == pytest.approx(w - 20.5)  # nose keeps its slot
    np.testing.assert_allclose(f.boxes, [[w - 32.0, 4.0, w - 8.0, 36.0]])
    unlab = COCO_FLIP_INDEX.index(3)  # the slot the unlabelled keypoint moved to stays (0, 0, 0)
    np.testing.assert_array_equal(f.kpts[0, unlab], [0, 0, 0])
    back = hflip(f, COCO_FLIP_INDEX)
    np.testing.assert_allclose(back.kpts, s.kpts, atol=1e-5)
    np.testing.assert_array_equal(back.image, s.image)


def test_warp_moves_a_known_point_with_its_pixel() -> None:
    s = _sample()
    m = np.array([[2.0, 0, 5.0], [0, 2.0, -3.0]], np.float32)  # scale 2, shift (5, -3)
    out = warp(s, m, (80, 100))
    x, y = out.kpts[0, 0, :2]
    assert (x, y) == pytest.approx((20.5 * 2 + 5, 10.5 * 2 - 3))
    ys, xs = np.nonzero(out.image[..., 0] > PAD_VALUE)
    wts = out.image[ys, xs, 0].astype(np.float64)
    # The bright pixel's (now 2x2) centre of mass is at the moved keypoint (pixel centres at i + 0.5).
    assert np.average(xs + 0.5, weights=wts) == pytest.approx(x, abs=0.05)
    assert np.average(ys + 0.5, weights=wts) == pytest.approx(y, abs=0.05)
    np.testing.assert_allclose(out.boxes, [[21.0, 5.0, 69.0, 69.0]])


def test_warp_zeroes_keypoints_pushed_outside() -> None:
    s = _sample()
    m = np.array([[1.0, 0, -15.0], [0, 1.0, 0.0]], np.float32)  # shift left by 15: x < 15 leaves
    out = warp(s, m, (40, 60))
    moved_x = s.kpts[0, :, 0] - 15
    outside = (moved_x < 0) & (s.kpts[0, :, 2] > 0)
    assert outside.any() and (~outside & (s.kpts[0, :, 2] > 0)).any()
    np.testing.assert_array_equal(out.kpts[0, outside], np.zeros((outside.sum(), 3)))
    inside = ~outside & (s.kpts[0, :, 2] > 0)
    np.testing.assert_allclose(out.kpts[0, inside, 0], moved_x[inside], atol=1e-5)
    assert out.boxes[0, 0] == 0.0  # box clipped at the left border
    # Shifted fully outside: the person is dropped.
    gone = warp(s, np.array([[1.0, 0, -100.0], [0, 1.0, 0.0]], np.float32), (40, 60))
    assert gone.boxes.shape == (0, 4) and gone.kpts.shape == (0, K, 3)


def test_mosaic_keeps_each_keypoint_on_its_pixel() -> None:
    samples = [_sample(40, 40, seed=i) for i in range(4)]
    out = mosaic(samples, 40, np.random.default_rng(3))
    assert out.image.shape == (80, 80, 3)
    assert out.kpts.shape[0] == out.boxes.shape[0] >= 1
    noses = out.kpts[:, 0]
    for x, y, v in noses:
        if v > 0:
            assert out.image[int(y), int(x), 0] == 255  # the nose pixel is under the nose keypoint
    # Every visible nose pixel has its keypoint, and noses cropped off the canvas were zeroed (v = 0).
    assert (out.image[..., 0] == 255).sum() == (noses[:, 2] > 0).sum() >= 1


def test_augment_output_size_and_labels_in_bounds() -> None:
    samples = [_sample(40, 60, seed=i) for i in range(4)]
    cfg = AugmentConfig()
    for seed in range(5):
        out = augment(
            samples, 64, cfg, COCO_FLIP_INDEX, np.random.default_rng(seed), use_mosaic=seed % 2 == 0
        )
        assert out.image.shape == (64, 64, 3) and out.image.dtype == np.uint8
        lab = out.kpts[..., 2] > 0
        assert ((out.kpts[..., 0][lab] >= 0) & (out.kpts[..., 0][lab] < 64)).all()
        assert ((out.boxes >= 0) & (out.boxes <= 64)).all()


def test_dataset_targets_match_labels_without_augmentation(synth_dataset) -> None:
    from edgepose.data.coco import read_coco
    from edgepose.train.dataset import PoseTrainDataset, collate

    data = read_coco(synth_dataset / "annotations.json")
    ds = PoseTrainDataset(data, 128, COCO_FLIP_INDEX)  # NO_AUGMENT: 128 px images pass unchanged
    i = next(j for j, r in enumerate(data.records) if r.num_people)
    image, t = ds[i]
    rec = data.records[i]
    assert tuple(image.shape) == (3, 128, 128)
    wh = rec.boxes[:, 2:] - rec.boxes[:, :2]
    keep = (wh > MIN_BOX_PX).all(1)  # slivers (people cut by the border) are not trained on
    assert 1 <= keep.sum() == len(t)
    np.testing.assert_allclose(t[:, 2], (rec.boxes[keep, 0] + rec.boxes[keep, 2]) / 2, atol=1e-4)
    np.testing.assert_allclose(t[:, 5], wh[keep, 1], atol=1e-4)
    kp = rec.keypoints[keep].copy()
    kp[kp[..., 2] <= 0] = 0
    np.testing.assert_allclose(t[:, 6:].reshape(-1, K, 3), kp, atol=1e-4)
    imgs, targets = collate([ds[i], ds[i]])
    assert tuple(imgs.shape) == (2, 3, 128, 128)
    assert targets[:, 0].tolist() == [0.0] * len(t) + [1.0] * len(t)
