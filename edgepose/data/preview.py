"""A grid of images with their ground-truth skeletons drawn, to check a dataset by eye."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from edgepose.data.types import ImageRecord, PoseDataset
from edgepose.errors import ConfigError, DataError
from edgepose.fsio import check_new, write_bytes
from edgepose.letterbox import letterbox

# BGR. Left limbs blue-ish, right limbs orange, centre (face, torso cross-links) green: the
# usual convention, so a left/right swap in the labels shows up as a colour swap.
LEFT, RIGHT, CENTRE = (255, 128, 0), (0, 128, 255), (0, 200, 0)
VIS_COLOUR = {2: (255, 255, 255), 1: (0, 255, 255)}  # v=2 filled white, v=1 hollow yellow
BOX_COLOUR = (255, 0, 255)
_ENCODABLE = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _side(name: str) -> str:
    return "left" if name.startswith("left") else "right" if name.startswith("right") else "centre"


def limb_colour(a: str, b: str) -> tuple[int, int, int]:
    """Colour of the limb between keypoints named `a` and `b`: left, right, or centre."""
    sides = {_side(a), _side(b)}
    return LEFT if sides == {"left"} else RIGHT if sides == {"right"} else CENTRE


def _pt(xy: np.ndarray) -> tuple[int, int]:
    return round(float(xy[0])), round(float(xy[1]))


def _draw_tile(dataset: PoseDataset, rec: ImageRecord, tile: int) -> np.ndarray:
    path = dataset.image_path(rec)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: missing or not an image OpenCV can decode (image id {rec.image_id})")
    canvas, info = letterbox(image, (tile, tile))
    canvas = np.ascontiguousarray(canvas)
    names = dataset.keypoint_names
    for box, kpts in zip(rec.boxes, rec.keypoints, strict=True):
        corners = info.to_network(box.reshape(2, 2))  # (2, 2) x1y1, x2y2
        # Marks shrink with the person so small people stay visible under their own skeleton.
        size = float(np.sqrt(max(np.prod(corners[1] - corners[0]), 1.0)))
        thick = int(np.clip(round(size / 40), 1, max(1, tile // 128)))
        radius = int(np.clip(round(size / 25), 1, thick + 1))
        cv2.rectangle(canvas, _pt(corners[0]), _pt(corners[1]), BOX_COLOUR, 1, cv2.LINE_AA)
        xy = info.to_network(kpts[:, :2])  # (K, 2)
        vis = kpts[:, 2]
        for a, b in dataset.skeleton:
            if vis[a] > 0 and vis[b] > 0:
                cv2.line(canvas, _pt(xy[a]), _pt(xy[b]), limb_colour(names[a], names[b]), thick, cv2.LINE_AA)
        for p, v in zip(xy, vis, strict=True):
            if v > 0:
                filled = cv2.FILLED if v >= 2 else 1
                cv2.circle(canvas, _pt(p), radius, VIS_COLOUR[2 if v >= 2 else 1], filled, cv2.LINE_AA)
    caption = f"id {rec.image_id}"
    (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    cv2.rectangle(canvas, (0, 0), (tw + 4, th + base + 4), (0, 0, 0), cv2.FILLED)
    cv2.putText(canvas, caption, (2, th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def grid_shape(num_images: int, cols: int) -> tuple[int, int]:
    """(rows, cols) of the grid for `num_images` tiles with at most `cols` per row."""
    c = min(cols, num_images)
    return math.ceil(num_images / c), c


def check_output(out_path: str | os.PathLike[str], *, force: bool = True) -> Path:
    """`out_path` as a Path once its suffix is an image format, its folder writable, and (unless `force`)
    nothing there yet."""
    out = Path(out_path)
    if out.suffix.lower() not in _ENCODABLE:
        raise ConfigError(
            f"{out}: unsupported image suffix {out.suffix!r}; use one of {', '.join(_ENCODABLE)}"
        )
    return check_new(out, force=force)


def preview_grid(
    dataset: PoseDataset,
    out_path: str | os.PathLike[str],
    num: int = 16,
    cols: int = 4,
    tile: int = 256,
    seed: int = 0,
) -> Path:
    """Draw `num` images (a seeded sample, in dataset order) with boxes and skeletons into one grid image.

    The grid is rows x cols tiles of `tile` x `tile` pixels (see `grid_shape`); the format follows
    the suffix of `out_path` (.jpg, .png, ...).
    """
    if num < 1 or cols < 1 or tile < 32:
        raise ConfigError(f"num={num}, cols={cols}, tile={tile}: need num >= 1, cols >= 1, tile >= 32")
    out = check_output(out_path)
    if len(dataset) == 0:
        raise DataError(f"{dataset.image_dir}: the dataset has no images to preview")
    n = min(num, len(dataset))
    picks = np.sort(np.random.default_rng(seed).choice(len(dataset), size=n, replace=False))
    rows, c = grid_shape(n, cols)
    grid = np.zeros((rows * tile, c * tile, 3), np.uint8)  # (rows*tile, cols*tile, 3) BGR
    for i, idx in enumerate(picks):
        r, q = divmod(i, c)
        grid[r * tile : (r + 1) * tile, q * tile : (q + 1) * tile] = _draw_tile(
            dataset, dataset.records[idx], tile
        )
    ok, buf = cv2.imencode(out.suffix.lower(), grid)
    if not ok:
        raise ConfigError(f"{out}: OpenCV cannot encode {out.suffix!r} images; use .jpg or .png")
    return write_bytes(out, buf.tobytes())
