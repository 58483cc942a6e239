"""YOLO-pose labels (Ultralytics layout) <-> PoseDataset.

Layout: `ROOT/images/<stem>.<ext>` and `ROOT/labels/<stem>.txt`, one line per person:
`cls cx cy w h x1 y1 v1 ... xK yK vK`, every coordinate normalised by the image width/height.
The 2-value variant (`x y` per keypoint, no visibility) is read too, with Ultralytics' rule:
a keypoint at (0, 0) is unlabelled (v=0), any other is visible (v=2).
An image without a label file is a background image (no people). `data.yaml` (written by
`write_yolo`) carries `kpt_shape` so datasets with K != 17 keypoints read back.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np

from edgepose.data.types import ImageRecord, PoseDataset
from edgepose.errors import DataError
from edgepose.fsio import atomic_dir
from edgepose.spec import COCO_FLIP_INDEX, COCO_KEYPOINTS, COCO_SKELETON, image_files

YAML_NAME = "data.yaml"
_NORM_TOL = 1e-3  # writers round; anything further outside [0, 1] is not a normalised label


def read_image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file; DataError when OpenCV cannot decode it."""
    # A full decode, not a header peek: it also proves the file is an image we can train on.
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"{path}: not an image OpenCV can decode; replace or delete the file")
    return int(image.shape[1]), int(image.shape[0])


def _read_text(path: Path) -> str:
    """A label or data.yaml as text; unreadable or non-UTF-8 bytes are a one-line DataError."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); fix or re-write the file"
        ) from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from exc


def _kpt_shape_from_yaml(root: Path) -> int | None:
    # A regex, not a YAML parser: pyyaml is not a base dependency and this is the one key we need.
    path = root / YAML_NAME
    if not path.is_file():
        return None
    m = re.search(r"^kpt_shape:\s*\[\s*(\d+)\s*,\s*[23]\s*\]", _read_text(path), re.M)
    return int(m.group(1)) if m else None


def _parse_line(
    text: str, where: str, num_kpts: int, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """One label line -> (box xyxy px (4,), keypoints px + v (K, 3))."""
    cols = text.split()
    n3, n2 = 5 + 3 * num_kpts, 5 + 2 * num_kpts
    if len(cols) not in (n3, n2):
        raise DataError(
            f"{where}: {len(cols)} values, expected {n3} (cls cx cy w h + {num_kpts} x 3 keypoint values) "
            f"or {n2} (x y only); fix the line or set kpt_shape in {YAML_NAME}"
        )
    try:
        vals = np.array([float(c) for c in cols], dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{where}: non-numeric value ({exc}); every column must be a number") from exc
    if not np.all(np.isfinite(vals)):
        raise DataError(f"{where}: NaN or infinite value; every column must be a finite number")
    if vals[0] != 0:
        raise DataError(f"{where}: class {cols[0]}, only class 0 (person) is supported; fix the label")
    dims = 3 if len(cols) == n3 else 2
    kpts = vals[5:].reshape(num_kpts, dims)  # (K, 3) or (K, 2)
    if dims == 3:
        vis = kpts[:, 2]
        if not np.all(np.isin(vis, (0.0, 1.0, 2.0))):
            bad = vis[~np.isin(vis, (0.0, 1.0, 2.0))][0]
            raise DataError(f"{where}: keypoint visibility {bad:g}, expected 0, 1 or 2; fix the label")
    else:
        vis = np.where((kpts[:, 0] == 0) & (kpts[:, 1] == 0), 0.0, 2.0)
    cx, cy, bw, bh = vals[1:5]
    coords = np.concatenate([vals[1:3], kpts[vis > 0, :2].ravel()])
    if bw < 0 or bh < 0 or coords.min(initial=0) < -_NORM_TOL or coords.max(initial=0) > 1 + _NORM_TOL:
        raise DataError(
            f"{where}: coordinates are not normalised to [0, 1] by the image size; divide pixel "
            "coordinates by the image width/height"
        )
    box = np.array(
        [(cx - bw / 2) * width, (cy - bh / 2) * height, (cx + bw / 2) * width, (cy + bh / 2) * height]
    )
    out = np.zeros((num_kpts, 3), np.float32)
    out[:, 0] = np.where(vis > 0, kpts[:, 0] * width, 0)
    out[:, 1] = np.where(vis > 0, kpts[:, 1] * height, 0)
    out[:, 2] = vis
    return box.astype(np.float32), out


def _image_ids(stems: list[str]) -> list[int]:
    # YOLO labels carry no image id: numeric stems (as written from COCO) keep theirs, else 1..N.
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(stems) + 1))


def read_yolo(
    root: str | os.PathLike[str],
    keypoint_names: tuple[str, ...] | None = None,
    skeleton: tuple[tuple[int, int], ...] = COCO_SKELETON,
) -> PoseDataset:
    """Read a YOLO-pose dataset folder (images/ + labels/)."""
    root = Path(root)
    image_dir, label_dir = root / "images", root / "labels"
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise DataError(f"{root}: no {d.name}/ folder; a YOLO-pose dataset has images/ and labels/")
    if keypoint_names is None:
        k = _kpt_shape_from_yaml(root) or len(COCO_KEYPOINTS)
        keypoint_names = COCO_KEYPOINTS if k == len(COCO_KEYPOINTS) else tuple(f"kpt{i}" for i in range(k))
        if k != len(COCO_KEYPOINTS):
            skeleton = ()
    num_kpts = len(keypoint_names)

    images: dict[str, Path] = {}
    for p in image_files(image_dir):
        if p.stem in images:
            raise DataError(f"{p}: two images share the stem {p.stem!r} ({images[p.stem].name}); rename one")
        images[p.stem] = p
    for label in sorted(label_dir.glob("*.txt")):
        if label.stem not in images:
            raise DataError(
                f"{label}: no image {label.stem}.* in {image_dir} for this label; add it or delete the label"
            )

    stems = list(images)
    records = []
    for image_id, stem in zip(_image_ids(stems), stems, strict=True):
        path = images[stem]
        width, height = read_image_size(path)
        boxes, kpts = [], []
        label = label_dir / f"{stem}.txt"
        if label.is_file():
            for lineno, text in enumerate(_read_text(label).splitlines(), start=1):
                if text.strip():
                    box, kp = _parse_line(text, f"{label}:{lineno}", num_kpts, width, height)
                    boxes.append(box)
                    kpts.append(kp)
        box_arr = np.stack(boxes) if boxes else np.zeros((0, 4), np.float32)  # (N, 4)
        kpt_arr = np.stack(kpts) if kpts else np.zeros((0, num_kpts, 3), np.float32)  # (N, K, 3)
        # YOLO keeps no segmentation area: use the box area (what COCO itself does without a mask).
        areas = ((box_arr[:, 2] - box_arr[:, 0]) * (box_arr[:, 3] - box_arr[:, 1])).astype(np.float32)
        records.append(
            ImageRecord(
                image_id=image_id,
                file_name=path.name,
                width=width,
                height=height,
                boxes=box_arr,
                keypoints=kpt_arr,
                areas=areas,
                iscrowd=np.zeros(len(boxes), np.int64),
            )
        )
    return PoseDataset(image_dir=image_dir, records=records, keypoint_names=keypoint_names, skeleton=skeleton)


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst` (same bytes, no disk use); copy when linking is not possible."""
    if not src.is_file():
        raise DataError(f"{src}: image file not found; fix the dataset's image folder or file_name")
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def flat_names(dataset: PoseDataset) -> list[str]:
    """Each record's image file name without sub-folders; DataError if two would collide."""
    names = [Path(r.file_name).name for r in dataset.records]
    seen: dict[str, str] = {}
    for name, rec in zip(names, dataset.records, strict=True):
        stem = Path(name).stem
        if stem in seen:
            raise DataError(
                f"images {seen[stem]!r} and {rec.file_name!r} share the stem {stem!r}; "
                "YOLO labels are matched by stem, so rename one"
            )
        seen[stem] = rec.file_name
    return names


def _format_line(box: np.ndarray, kpts: np.ndarray, width: int, height: int) -> str:
    x1, y1, x2, y2 = (float(v) for v in box)
    box_vals = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
    cols = ["0", *(f"{v:.6f}" for v in box_vals)]
    for x, y, v in kpts:
        # Unlabelled keypoints are written as 0 0 0 (Ultralytics' convention), whatever x, y held.
        cols += [f"{x / width:.6f}", f"{y / height:.6f}", str(int(v))] if v > 0 else ["0", "0", "0"]
    return " ".join(cols)


def _yaml_text(dataset: PoseDataset) -> str:
    k = len(dataset.keypoint_names)
    lines = ["# edgepose YOLO-pose dataset (Ultralytics layout)", "path: .", "train: images", "val: images",
             f"kpt_shape: [{k}, 3]"]  # fmt: skip
    if tuple(dataset.keypoint_names) == COCO_KEYPOINTS:
        lines.append(f"flip_idx: [{', '.join(str(i) for i in COCO_FLIP_INDEX)}]")
    lines += ["names:", "  0: person", ""]
    return "\n".join(lines)


def write_yolo(dataset: PoseDataset, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write `dataset` as a YOLO-pose folder (images hard-linked or copied, never re-encoded)."""
    names = flat_names(dataset)
    out = Path(out_dir)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        for name, rec in zip(names, dataset.records, strict=True):
            link_or_copy(dataset.image_path(rec), tmp / "images" / name)
            # Crowd regions have no YOLO equivalent (Ultralytics drops them too): training on them as
            # single people would be wrong.
            people = zip(rec.boxes, rec.keypoints, rec.iscrowd, strict=True)
            lines = [_format_line(b, k, rec.width, rec.height) for b, k, crowd in people if not crowd]
            (tmp / "labels" / f"{Path(name).stem}.txt").write_text(
                "".join(line + "\n" for line in lines), encoding="utf-8"
            )
        (tmp / YAML_NAME).write_text(_yaml_text(dataset), encoding="utf-8")
    return out
