"""Procedural multi-person pose dataset in COCO keypoints format.

Image i is rendered from `np.random.default_rng([seed, i])`, so a dataset is reproducible byte for
byte and does not depend on how it is chunked. Keypoint visibility comes from the rendering itself:
every drawn pixel records which person (and which body part) or occluder owns it.

Generator versions (the `version` argument; the pixels and the people drawn are the same in both):

1. keypoints labelled on every person, however small (until issue 19).
2. (default) COCO's annotation protocol: COCO labels keypoints on medium and large people only (of the
   real val2017 people we checked, none of the 124 with keypoints is small), so a person whose visible
   area is below KPT_MIN_AREA (32 x 32 px, COCO's small/medium boundary, in absolute pixels like
   COCOeval's area ranges) keeps its box and area but gets `num_keypoints: 0` (all keypoints 0, 0, 0).
   COCOeval ignores such people, so detections on them are neither hits nor false positives, and the
   39% of version-1 val people that were tiny keypoint targets no longer count in AP. Training readers
   keep them as box-only people (the YOLO-Pose loss trains their box and score; ER-Pose treats them as
   ignore regions).
"""

from __future__ import annotations

import bisect
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgepose import fsio
from edgepose.data.coco import write_coco
from edgepose.data.synth_body import KEYPOINT_PARTS, PARTS_PER_PERSON, sample_person
from edgepose.data.synth_draw import draw_person, owner_box
from edgepose.data.synth_scene import background, clutter, finish, occluders
from edgepose.data.types import ImageRecord, PoseDataset
from edgepose.errors import ConfigError
from edgepose.spec import ANNOTATIONS_FILE

MAX_PEOPLE = 8
_COUNT_WEIGHTS = np.array([3, 20, 20, 17, 13, 9, 7, 6, 5], np.float64)  # P(n people), n = 0..8
_COUNT_CDF = (np.cumsum(_COUNT_WEIGHTS) / _COUNT_WEIGHTS.sum()).tolist()[:-1]
MIN_SIZE = 32
JPEG_QUALITY = 92
SYNTH_VERSION = 2  # the default generator version (module docstring); 1 reproduces the earlier datasets
VERSIONS = (1, 2)
KPT_MIN_AREA = 32 * 32  # version 2: people with a smaller visible area carry no keypoints (COCO "small")


@dataclass
class SynthSample:
    """One rendered image and its annotated people: those with at least one keypoint inside the image
    (version 2: a person below KPT_MIN_AREA then has its keypoints cleared, box and area kept)."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    boxes: np.ndarray  # (N, 4) x1 y1 x2 y2: tight box of the visible pixels
    keypoints: np.ndarray  # (N, 17, 3) x, y, v (v=0 rows are 0, 0, 0; all 0 for small people in version 2)
    areas: np.ndarray  # (N,) visible pixel count
    masks: np.ndarray  # (N, H, W) bool: the pixels where each person is visible in the final image
    # (N, 17) bool: on the person's own mask but hidden by its own body (a far limb) or facing away
    self_occluded: np.ndarray
    heights: np.ndarray  # (N,) standing height in pixels (the person's scale)


def _height_fraction(rng: np.random.Generator) -> float:
    """Standing height / image size: 15% in [0.05, 0.15), 50% in [0.15, 0.5), 35% in [0.5, 0.9)."""
    k = rng.random()
    lo, hi = (0.05, 0.15) if k < 0.15 else (0.15, 0.5) if k < 0.65 else (0.5, 0.9)
    return float(rng.uniform(lo, hi))


def _allowed_codes() -> np.ndarray:
    """(MAX_PEOPLE + 1, 17, 256) bool: owner codes on which keypoint k of person i counts as seen."""
    table = np.zeros((MAX_PEOPLE + 1, 17, 256), bool)
    for i in range(MAX_PEOPLE + 1):
        for k, parts in enumerate(KEYPOINT_PARTS):
            for p in parts:
                table[i, k, 1 + i * PARTS_PER_PERSON + p] = True
    return table


_ALLOWED = _allowed_codes()
_K = np.arange(17)


def render_sample(seed: int, index: int, size: int, version: int = SYNTH_VERSION) -> SynthSample:
    """Render image `index` of the dataset with `seed` at `size` x `size` pixels."""
    return _render(seed, index, size, with_masks=True, version=_check_version(version))


def _check_version(version: int) -> int:
    if version not in VERSIONS:
        raise ConfigError(
            f"generator version {version!r} is unknown; use one of {', '.join(map(str, VERSIONS))} "
            f"({SYNTH_VERSION} is the default)"
        )
    return int(version)


def _render(seed: int, index: int, size: int, with_masks: bool, version: int = SYNTH_VERSION) -> SynthSample:
    """render_sample; without masks `masks` is (N, 0, 0) (synthesize does not write them)."""
    rng = np.random.default_rng([seed, index])
    img = background(rng, size)
    clutter(rng, img)
    owner = np.zeros((size, size), np.uint8)  # 0 background, 1 + 16 i + part, OCCLUDER_CODE
    n = bisect.bisect(_COUNT_CDF, rng.random())
    light = float(rng.uniform(0.8, 1.1))
    people = [sample_person(rng, size, _height_fraction(rng), light) for _ in range(n)]
    people.sort(key=lambda p: p.depth_y)  # lower in the image = nearer = drawn later
    for i, person in enumerate(people):
        draw_person(img, owner, person, i, outline=person.height_px >= 60)
    occluders(rng, img, owner)
    img = finish(rng, img)

    # keypoint labels of all people at once (the same elementwise maths as one person at a time)
    n = len(people)
    xy = np.array([p.keypoints for p in people], np.float64).reshape(n, 17, 2)
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < size) & (xy[..., 1] >= 0) & (xy[..., 1] < size)  # (N, 17)
    ix = np.clip(np.round(xy[..., 0]), 0, size - 1).astype(np.intp)
    iy = np.clip(np.round(xy[..., 1]), 0, size - 1).astype(np.intp)
    code = owner[iy, ix]  # (N, 17) owner of the pixel under each keypoint
    person = np.arange(n)[:, None]  # (N, 1)
    face_hidden = np.array([p.face_hidden for p in people], bool).reshape(n, 17)
    seen = _ALLOWED[person, _K, code] & ~face_hidden
    v = np.where(inside, np.where(seen, 2, 1), 0)  # (N, 17)
    kp_all = np.concatenate([xy, v[..., None]], 2).astype(np.float32)  # (N, 17, 3)
    kp_all[v == 0] = 0.0
    first = 1 + person * PARTS_PER_PERSON
    own_pixel = (code >= first) & (code < first + PARTS_PER_PERSON)
    self_occluded = inside & ~seen & own_pixel  # (N, 17)
    labelled = (v > 0).any(1)  # (N,)

    boxes, kpts, areas, masks, selfocc, heights = [], [], [], [], [], []
    for i, p in enumerate(people):
        if not labelled[i]:
            continue
        lo = 1 + i * PARTS_PER_PERSON
        # Only the person's own box of the owner map can hold its codes (later people and occluders
        # only overwrite them), so inRange, countNonZero and boundingRect on that box give exactly
        # what they give on the whole map, at a fraction of the cost.
        x0, y0, x1, y1 = owner_box(p, size)
        if x1 <= x0 or y1 <= y0:  # drawn entirely outside the image
            continue
        mask_u8 = cv2.inRange(owner[y0:y1, x0:x1], lo, lo + PARTS_PER_PERSON - 1)  # visible pixels, 0/255
        area = cv2.countNonZero(mask_u8)
        if area == 0:
            continue
        x, y, w, h = cv2.boundingRect(mask_u8)
        x, y = x + x0, y + y0
        boxes.append([x, y, x + w, y + h])
        small = version >= 2 and area < KPT_MIN_AREA  # COCO protocol: no keypoints on small people
        kpts.append(np.zeros_like(kp_all[i]) if small else kp_all[i])
        areas.append(area)
        if with_masks:
            mask = np.zeros((size, size), bool)
            mask[y0:y1, x0:x1] = mask_u8 > 0
            masks.append(mask)
        selfocc.append(np.zeros_like(self_occluded[i]) if small else self_occluded[i])
        heights.append(p.height_px)
    m = len(boxes)
    return SynthSample(
        image=img,
        boxes=np.array(boxes, np.float32).reshape(m, 4),
        keypoints=np.array(kpts, np.float32).reshape(m, 17, 3),
        areas=np.array(areas, np.float32),
        masks=np.array(masks, bool).reshape((m, size, size) if with_masks else (m, 0, 0)),
        self_occluded=np.array(selfocc, bool).reshape(m, 17),
        heights=np.array(heights, np.float32),
    )


def synthesize(
    out_dir: str | Path,
    num_images: int,
    size: int = 256,
    seed: int = 0,
    *,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    version: int = SYNTH_VERSION,
) -> Path:
    """Write out_dir/images/000000.jpg ... and out_dir/ANNOTATIONS_FILE (COCO keypoints); returns out_dir.

    `progress` is called after each image with the number of images written so far. The folder
    appears only when complete (nothing is left behind on an error or Ctrl-C). `version` picks the
    generator version (module docstring); ANNOTATIONS_FILE records it under info (version 2 on; version 1
    writes the earlier info block unchanged).
    """
    if not isinstance(num_images, numbers.Integral) or num_images < 1:
        raise ConfigError(f"--num-images must be >= 1, got {num_images}; ask for at least one image")
    if not isinstance(size, numbers.Integral) or size < MIN_SIZE:
        raise ConfigError(f"--size must be >= {MIN_SIZE} pixels, got {size}; use e.g. --size 256")
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"--seed must be an integer >= 0, got {seed}")
    num_images, size, seed = int(num_images), int(size), int(seed)
    version = _check_version(version)
    out = Path(out_dir)
    records = []
    with fsio.atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        for i in range(num_images):
            s = _render(seed, i, size, with_masks=False, version=version)
            name = f"{i:06d}.jpg"
            ok, buf = cv2.imencode(".jpg", s.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGR image
                raise RuntimeError(f"cv2.imencode failed for image {i}")
            (tmp / "images" / name).write_bytes(buf.tobytes())
            records.append(
                ImageRecord(
                    image_id=i + 1,  # COCO ids start at 1
                    file_name=name,
                    width=size,
                    height=size,
                    boxes=s.boxes,
                    keypoints=s.keypoints,
                    areas=s.areas,
                    iscrowd=np.zeros(len(s.boxes), np.int64),
                )
            )
            if progress is not None:
                progress(i + 1)
        # Version 1 keeps its original info block, so it reproduces the earlier datasets byte for byte.
        info = {"description": "edgepose synthetic pose dataset", "generator_version": version, "seed": seed}
        write_coco(
            PoseDataset(out / "images", records), tmp / ANNOTATIONS_FILE, info=info if version > 1 else None
        )
    return out
