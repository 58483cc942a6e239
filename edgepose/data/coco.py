"""COCO keypoints JSON: read into a PoseDataset (validating every record), write one back.

The reader accepts what real users bring (the COCO person_keypoints files and their exports):
one person category with `keypoints` names and a 1-based `skeleton`. Every problem is a
`DataError` naming the file and the record.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from edgepose import fsio
from edgepose.data.types import ImageRecord, PoseDataset
from edgepose.errors import DataError
from edgepose.spec import ANNOTATIONS_FILE, COCO_KEYPOINTS, COCO_SKELETON


def load_json(json_path: str | Path) -> dict[str, Any]:
    """Load a COCO JSON file; a missing file or invalid JSON is a one-line DataError."""
    path = Path(json_path)
    if not path.is_file():
        hint = "it is a folder; pass the .json file" if path.is_dir() else "check the path"
        raise DataError(f"{path}: annotation file not found ({hint})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read annotation file ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
            "fix or re-export the file"
        ) from exc
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: expected a COCO JSON object with 'images' and 'annotations', got a list/value"
        )
    return data


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _person_category(data: dict[str, Any], path: Path) -> tuple[int | None, tuple[str, ...], tuple]:
    """(category id to keep or None for all, keypoint names, 0-based skeleton)."""
    cats = data.get("categories") or []
    if not isinstance(cats, list):
        raise DataError(f"{path}: 'categories' must be a list, got {type(cats).__name__}")
    with_kpts = [c for c in cats if isinstance(c, dict) and c.get("keypoints")]
    if not with_kpts:
        return None, COCO_KEYPOINTS, COCO_SKELETON
    cat = next((c for c in with_kpts if c.get("name") == "person"), with_kpts[0])
    names = tuple(str(n) for n in cat["keypoints"])
    skel_raw = cat.get("skeleton")
    if skel_raw is None:
        skeleton = COCO_SKELETON if names == COCO_KEYPOINTS else ()
    else:
        try:
            skeleton = tuple((int(a) - 1, int(b) - 1) for a, b in skel_raw)  # JSON is 1-based
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: category {cat.get('id')} has a malformed 'skeleton' ({exc})") from exc
        if any(not (0 <= a < len(names) and 0 <= b < len(names)) for a, b in skeleton):
            raise DataError(
                f"{path}: category {cat.get('id')} skeleton refers to keypoints outside 1..{len(names)}"
            )
    return cat.get("id"), names, skeleton


def _image_entry(img: Any, i: int, path: Path) -> tuple[int, str, int, int]:
    if not isinstance(img, dict):
        raise DataError(f"{path}: images[{i}] is not an object")
    for key in ("id", "file_name", "width", "height"):
        if key not in img:
            raise DataError(
                f"{path}: images[{i}] (id {img.get('id')}) has no '{key}'; fix or re-export the file"
            )
    if not isinstance(img["id"], int) or not isinstance(img["file_name"], str):
        raise DataError(f"{path}: images[{i}] has a non-integer id or non-string file_name")
    w, h = img["width"], img["height"]
    if not (_number(w) and _number(h) and w > 0 and h > 0):
        raise DataError(f"{path}: image {img['id']} has invalid size {w}x{h}; width/height must be > 0")
    return img["id"], img["file_name"], int(w), int(h)


def _annotation(ann: Any, i: int, k: int, path: Path) -> tuple[int, np.ndarray, np.ndarray, float, int]:
    """(image_id, box xyxy (4,), keypoints (K, 3), area, iscrowd) of one annotation, validated."""
    if not isinstance(ann, dict):
        raise DataError(f"{path}: annotations[{i}] is not an object")
    aid = ann.get("id", f"#{i}")
    where = f"{path}: annotation {aid}"
    if "image_id" not in ann:
        raise DataError(f"{where} has no 'image_id'; fix or re-export the file")
    kp = ann.get("keypoints")
    if kp is None:
        raise DataError(
            f"{where} has no 'keypoints'; a pose dataset needs {k} x 3 keypoint values per person"
        )
    if not isinstance(kp, list) or len(kp) != 3 * k:
        n = len(kp) if isinstance(kp, list) else type(kp).__name__
        raise DataError(f"{where} has {n} keypoint values, expected {3 * k} ({k} x 3); fix or re-export it")
    try:
        kpts = np.array(kp, np.float32).reshape(k, 3)  # (K, 3)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where} has non-numeric keypoint values; expected numbers x, y, v") from exc
    if not np.isfinite(kpts).all():
        raise DataError(f"{where} has non-finite keypoint values (NaN or inf); expected numbers x, y, v")
    vis = kpts[:, 2]
    if not ((vis == 0) | (vis == 1) | (vis == 2)).all():
        bad = sorted(set(vis.tolist()) - {0.0, 1.0, 2.0})
        raise DataError(f"{where} has keypoint visibility {bad[0]:g}; COCO visibility must be 0, 1 or 2")
    bbox = ann.get("bbox")
    if bbox is None:
        vis = kpts[kpts[:, 2] > 0, :2]
        if len(vis) == 0:
            raise DataError(f"{where} has no 'bbox' and no labelled keypoints to derive one from")
        x1, y1 = vis.min(0)
        x2, y2 = vis.max(0)
        bbox = [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)) or min(bbox[2:]) < 0:
        raise DataError(f"{where} has bbox {bbox!r}; expected [x, y, width, height] with width, height >= 0")
    x, y, w, h = (float(v) for v in bbox)
    area = ann.get("area", w * h)
    if not _number(area) or area < 0:
        raise DataError(f"{where} has area {area!r}; expected a number >= 0")
    iscrowd = ann.get("iscrowd", 0)
    if iscrowd not in (0, 1):
        raise DataError(f"{where} has iscrowd {iscrowd!r}; expected 0 or 1")
    return ann["image_id"], np.array([x, y, x + w, y + h], np.float32), kpts, float(area), int(iscrowd)


def read_coco(json_path: str | Path, image_dir: str | Path | None = None) -> PoseDataset:
    """Read a COCO keypoints JSON file into a PoseDataset.

    `image_dir` defaults to `images/` beside the JSON file if it exists, else the JSON's folder.
    Only annotations of the person (keypoint) category are kept.
    """
    path = Path(json_path)
    data = load_json(path)
    for key in ("images", "annotations"):
        if key not in data:
            raise DataError(f"{path}: no '{key}' list; not a COCO keypoints file")
        if not isinstance(data[key], list):
            raise DataError(f"{path}: '{key}' must be a list, got {type(data[key]).__name__}")
    cat_id, names, skeleton = _person_category(data, path)
    k = len(names)

    records: dict[int, ImageRecord] = {}
    for i, img in enumerate(data["images"]):
        image_id, file_name, w, h = _image_entry(img, i, path)
        if image_id in records:
            raise DataError(f"{path}: image id {image_id} appears twice in 'images'; ids must be unique")
        records[image_id] = ImageRecord(image_id, file_name, w, h)

    per_image: dict[int, list[tuple[np.ndarray, np.ndarray, float, int]]] = {}
    for i, ann in enumerate(data["annotations"]):
        if cat_id is not None and isinstance(ann, dict) and ann.get("category_id", cat_id) != cat_id:
            continue
        image_id, box, kpts, area, crowd = _annotation(ann, i, k, path)
        if image_id not in records:
            aid = ann.get("id", f"#{i}")
            raise DataError(
                f"{path}: annotation {aid} refers to image id {image_id}, which is not in 'images'"
            )
        per_image.setdefault(image_id, []).append((box, kpts, area, crowd))

    for image_id, anns in per_image.items():
        rec = records[image_id]
        rec.boxes = np.stack([a[0] for a in anns]).astype(np.float32)  # (N, 4)
        rec.keypoints = np.stack([a[1] for a in anns]).astype(np.float32)  # (N, K, 3)
        rec.areas = np.array([a[2] for a in anns], np.float32)  # (N,)
        rec.iscrowd = np.array([a[3] for a in anns], np.int64)  # (N,)
    for rec in records.values():
        if rec.keypoints.shape[1] != k:
            rec.keypoints = np.zeros((0, k, 3), np.float32)

    if image_dir is None:
        image_dir = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    return PoseDataset(Path(image_dir), list(records.values()), names, tuple(skeleton))


def ground_truth_ids(folder: str | Path) -> tuple[Path, dict[str, int]] | None:
    """For a COCO dataset folder (`DIR` holding ANNOTATIONS_FILE, as `data synth` writes it) or its image
    folder (`DIR/images`): the image folder and {resolved image path: image id}, matched by file name; None
    for any other folder. `predict --save-json` numbers such images with the ground truth's ids."""
    path = Path(folder)
    for json_path in (path / ANNOTATIONS_FILE, path.parent / ANNOTATIONS_FILE):
        if not json_path.is_file():
            continue
        dataset = read_coco(json_path)
        if json_path.parent == path or dataset.image_dir.resolve() == path.resolve():
            ids = {str(dataset.image_path(r).resolve()): r.image_id for r in dataset.records}
            return dataset.image_dir, ids
    return None


def _r(v: float) -> float | int:
    """Round to 0.01 px and write integers without a fraction: compact, deterministic JSON."""
    f = round(float(v), 2)
    return int(f) if f.is_integer() else f


def dataset_to_coco_dict(dataset: PoseDataset, info: dict[str, Any] | None = None) -> dict:
    """The COCO keypoints dict of `dataset` (v=0 keypoints written as 0, 0, 0; skeleton 1-based);
    `info` replaces the default info block (the synthetic generator records its version there)."""
    category = {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(dataset.keypoint_names),
        "skeleton": [[a + 1, b + 1] for a, b in dataset.skeleton],
    }
    images, annotations = [], []
    ann_id = 1  # COCOeval treats id 0 as "unmatched": ids start at 1
    for rec in dataset.records:
        images.append(
            {"id": int(rec.image_id), "file_name": rec.file_name, "width": rec.width, "height": rec.height}
        )
        for j in range(rec.num_people):
            kp = rec.keypoints[j].astype(np.float64)  # (K, 3)
            kp[kp[:, 2] <= 0] = 0.0
            x1, y1, x2, y2 = (float(v) for v in rec.boxes[j])
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": int(rec.image_id),
                    "category_id": 1,
                    "bbox": [_r(x1), _r(y1), _r(x2 - x1), _r(y2 - y1)],
                    "area": _r(rec.areas[j]) if len(rec.areas) else _r((x2 - x1) * (y2 - y1)),
                    "keypoints": [_r(v) if c < 2 else int(v) for row in kp for c, v in enumerate(row)],
                    "num_keypoints": int((kp[:, 2] > 0).sum()),
                    "iscrowd": int(rec.iscrowd[j]) if len(rec.iscrowd) else 0,
                }
            )
            ann_id += 1
    return {
        "info": dict(info) if info is not None else {"description": "edgepose pose dataset"},
        "images": images,
        "annotations": annotations,
        "categories": [category],
    }


def write_coco(dataset: PoseDataset, json_path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write `dataset` as a COCO keypoints JSON file, atomically."""
    text = json.dumps(dataset_to_coco_dict(dataset, info), separators=(",", ":"))
    return fsio.write_text(json_path, text)
