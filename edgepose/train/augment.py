"""Training augmentation on numpy/OpenCV: mosaic, random affine (scale + translation), horizontal
flip with left/right keypoint swap, HSV jitter. Cheap on purpose: training runs on CPU boards' hosts.

Labels travel as `boxes` (N, 4) x1 y1 x2 y2 and `kpts` (N, K, 3) x, y, v in pixels of the image
they belong to; a keypoint with v = 0 carries no position (x = y = 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgepose.defaults import LETTERBOX_COLOR
from edgepose.train.options import AugmentConfig

PAD_VALUE = LETTERBOX_COLOR  # mosaic and affine borders: the grey evaluation letterboxes with
MIN_BOX_PX = 2.0  # boxes thinner than this after a transform are dropped
MIN_AREA_KEPT = 0.1  # ... and so are boxes that lost more than 90 % of their area to cropping


@dataclass
class Sample:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    boxes: np.ndarray  # (N, 4)
    kpts: np.ndarray  # (N, K, 3)


def hflip(s: Sample, flip_index: Sequence[int]) -> Sample:
    """Mirror the image: x' = W - x for boxes and keypoints; left and right keypoints swap slots."""
    w = s.image.shape[1]
    image = np.ascontiguousarray(s.image[:, ::-1])
    boxes = s.boxes.copy()
    boxes[:, [0, 2]] = w - s.boxes[:, [2, 0]]
    kpts = s.kpts[:, list(flip_index)].copy()  # (N, K, 3) slot i now holds the mirror partner
    labelled = kpts[..., 2] > 0
    kpts[..., 0] = np.where(labelled, w - kpts[..., 0], 0.0)
    return Sample(image, boxes, kpts)


def transform_labels(
    boxes: np.ndarray, kpts: np.ndarray, m: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Labels under the scale+shift `m` (2x3, no rotation) into an image of `size` (H, W).

    Keypoints that land outside get v = 0 (and x = y = 0); boxes are clipped, and dropped when
    thinner than MIN_BOX_PX or cut to less than MIN_AREA_KEPT of their area.
    """
    h, w = size
    if boxes.shape[0] == 0:
        return boxes.copy(), kpts.copy()
    sx, sy, tx, ty = m[0, 0], m[1, 1], m[0, 2], m[1, 2]
    boxes = boxes * np.array([sx, sy, sx, sy], np.float32) + np.array([tx, ty, tx, ty], np.float32)
    out = kpts.copy()
    out[..., 0] = kpts[..., 0] * sx + tx
    out[..., 1] = kpts[..., 1] * sy + ty
    inside = (out[..., 0] >= 0) & (out[..., 0] < w) & (out[..., 1] >= 0) & (out[..., 1] < h)
    out[~(inside & (kpts[..., 2] > 0))] = 0.0
    area0 = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    clipped = np.stack(
        (boxes[:, 0].clip(0, w), boxes[:, 1].clip(0, h), boxes[:, 2].clip(0, w), boxes[:, 3].clip(0, h)), 1
    )  # (N, 4)
    bw, bh = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (bw > MIN_BOX_PX) & (bh > MIN_BOX_PX) & (bw * bh > MIN_AREA_KEPT * np.maximum(area0, 1e-6))
    return clipped[keep].astype(np.float32), out[keep].astype(np.float32)


def warp(s: Sample, m: np.ndarray, size: tuple[int, int]) -> Sample:
    """Apply the 2x3 scale+shift `m` into an image of `size` (H, W); labels follow (`transform_labels`)."""
    h, w = size
    # Labels use continuous coordinates (pixel i spans [i, i + 1)); OpenCV maps pixel-centre indices,
    # so x' = s x + t becomes i' = s i + t + (s - 1) / 2 for it.
    m_cv = m.copy()
    m_cv[0, 2] += (m[0, 0] - 1) / 2
    m_cv[1, 2] += (m[1, 1] - 1) / 2
    image = cv2.warpAffine(s.image, m_cv, (w, h), flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3)
    return Sample(image, *transform_labels(s.boxes, s.kpts, m, size))


def affine_matrix(
    rng: np.random.Generator,
    src_size: tuple[int, int],
    dst_size: tuple[int, int],
    scale: tuple[float, float],
    translate: float,
) -> np.ndarray:
    """2x3 matrix: random scale about the source centre, centred in the destination, random shift."""
    (sh, sw), (dh, dw) = src_size, dst_size
    s = rng.uniform(*scale)
    tx = rng.uniform(-translate, translate) * dw
    ty = rng.uniform(-translate, translate) * dh
    return np.array(
        [[s, 0.0, dw / 2 - s * sw / 2 + tx], [0.0, s, dh / 2 - s * sh / 2 + ty]], dtype=np.float32
    )


def mosaic(samples: Sequence[Sample], size: int, rng: np.random.Generator) -> Sample:
    """Tile 4 samples (each resized to fit `size`) around a random centre of a 2*size canvas."""
    canvas = np.full((2 * size, 2 * size, 3), PAD_VALUE, np.uint8)
    xc, yc = (int(rng.uniform(0.5 * size, 1.5 * size)) for _ in range(2))
    boxes, kpts = [], []
    for i, s in enumerate(samples[:4]):
        h0, w0 = s.image.shape[:2]
        r = size / max(h0, w0)
        img = cv2.resize(s.image, (round(w0 * r), round(h0 * r))) if r != 1 else s.image
        h, w = img.shape[:2]
        # Corner of the tile on the canvas: top-left, top-right, bottom-left, bottom-right of the centre.
        x1 = xc - w if i in (0, 2) else xc
        y1 = yc - h if i in (0, 1) else yc
        cx1, cy1 = max(x1, 0), max(y1, 0)
        cx2, cy2 = min(x1 + w, 2 * size), min(y1 + h, 2 * size)
        canvas[cy1:cy2, cx1:cx2] = img[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
        # Tiles never overlap, so clipping labels to the canvas is clipping them to their tile.
        b, kp = transform_labels(
            s.boxes, s.kpts, np.array([[r, 0, x1], [0, r, y1]], np.float32), canvas.shape[:2]
        )
        boxes.append(b)
        kpts.append(kp)
    k = samples[0].kpts.shape[1]
    return Sample(
        canvas,
        np.concatenate(boxes, 0) if boxes else np.zeros((0, 4), np.float32),  # (N, 4)
        np.concatenate(kpts, 0) if kpts else np.zeros((0, k, 3), np.float32),  # (N, K, 3)
    )


def hsv_jitter(image: np.ndarray, gains: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Random hue/saturation/value gains (YOLOv5's look-up-table version) on an RGB uint8 image."""
    if not any(gains):
        return image
    r = rng.uniform(-1, 1, 3) * np.asarray(gains) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_hue = ((x * r[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * r[2], 0, 255).astype(np.uint8)
    merged = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(merged, cv2.COLOR_HSV2RGB)


def augment(
    samples: Sequence[Sample],
    size: int,
    cfg: AugmentConfig,
    flip_index: Sequence[int],
    rng: np.random.Generator,
    use_mosaic: bool,
) -> Sample:
    """One training sample of `size` x `size`: mosaic of all 4 `samples` when `use_mosaic`, else the
    first one; then random affine, horizontal flip, HSV jitter."""
    if use_mosaic:
        s = mosaic(samples, size, rng)
    else:
        s = samples[0]
        h0, w0 = s.image.shape[:2]
        r = size / max(h0, w0)  # fit the longest side, as the letterbox does
        if r != 1:
            m = np.array([[r, 0, 0], [0, r, 0]], np.float32)
            s = warp(s, m, (round(h0 * r), round(w0 * r)))
    m = affine_matrix(rng, s.image.shape[:2], (size, size), cfg.scale, cfg.translate)
    s = warp(s, m, (size, size))
    if rng.random() < cfg.flip:
        s = hflip(s, flip_index)
    return Sample(hsv_jitter(s.image, cfg.hsv, rng), s.boxes, s.kpts)
