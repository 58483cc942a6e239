"""COCO OKS keypoint evaluation through pycocotools (the reference implementation, not a rewrite)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgepose.data.coco import load_json
from edgepose.data.types import PoseDataset
from edgepose.errors import DataError
from edgepose.spec import COCO_KEYPOINTS, FILES_FILE, sigmas_for

_RESULT_KEYS = ("image_id", "keypoints", "score")  # category_id defaults to 1 (person)


@dataclass(frozen=True)
class KeypointMetrics:
    """COCO keypoint metrics in [0, 1]; -1 where the ground truth has no people of that size (pycocotools)."""

    ap: float  # AP @ OKS 0.50:0.95
    ap50: float
    ap75: float
    apm: float  # medium people (32^2 < area <= 96^2)
    apl: float  # large people (area > 96^2)
    ar: float  # AR @ OKS 0.50:0.95, 20 detections per image

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# How every metric is shown to a person (val, train, bench tables): COCO points, 100 x the fraction. Files
# (val --json, bench.json, metrics.jsonl) keep the fractions and say so under this key.
AP_SCALE_KEY, AP_SCALE = "ap_scale", "fraction in [0, 1]; tables show COCO points (x100)"


def points(value: float) -> str:
    """A metric in COCO points with one decimal (0.1412 -> "14.1"); "n/a" for pycocotools' -1 (the ground
    truth has no people of that size)."""
    return "n/a" if value < 0 else f"{100 * value:.1f}"


def signed_points(delta: float) -> str:
    """A difference in COCO points with its sign (-0.0123 -> "-1.2"); one that rounds to zero reads "0.0"."""
    text = f"{100 * delta:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def _gt_dict(gt: str | Path | dict) -> tuple[dict, str]:
    """A copy of the ground truth dict that pycocotools accepts, and its name for messages."""
    if isinstance(gt, dict):
        data, name = copy.deepcopy(gt), "ground truth"
    else:
        data, name = load_json(gt), str(gt)
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{name}: no '{key}' list; not a COCO keypoints file")
    if not data.get("categories"):
        data["categories"] = [{"id": 1, "name": "person"}]
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not isinstance(ann.get("keypoints"), list):
            raise DataError(
                f"{name}: annotation {ann.get('id', i) if isinstance(ann, dict) else i} has no keypoints"
            )
        kp = ann["keypoints"]
        ann.setdefault("num_keypoints", sum(1 for v in kp[2::3] if v > 0))  # pycocotools ignores 0-kpt people
        ann.setdefault("iscrowd", 0)
        if "area" not in ann and "bbox" in ann:
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
    return data, name


def _ids(ids: Sequence[int], limit: int = 8) -> str:
    """`1, 2, 5` or `1, 2, 3, 5, 6, 7, 8, 9, ... (12 ids)`: at most `limit` of them shown."""
    text = ", ".join(map(str, ids[:limit]))
    return text if len(ids) <= limit else f"{text}, ... ({len(ids)} ids)"


def _id_range(ids: set[int]) -> str:
    lo, hi = min(ids), max(ids)
    return f"ids {lo}..{hi}" if len(ids) == hi - lo + 1 else f"{len(ids)} ids from {lo} to {hi}"


def load_predictions(path: Path, gt: PoseDataset) -> list[dict]:
    """Check a COCO keypoint results file (a JSON list of {image_id, keypoints, score}) against the ground
    truth `gt`: every image id must be one of its images, and where `predict --save-json` wrote FILES_FILE
    beside it, each id must name the same image file as in `gt` (ids numbered for another set of images
    would otherwise score a silent AP 0)."""
    num_keypoints = len(gt.keypoint_names)
    if not path.is_file():
        raise DataError(f"{path}: prediction file not found; pass --pred PRED.json (COCO results format)")
    try:
        preds = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); pass a COCO keypoint results file") from exc
    if not isinstance(preds, list):
        raise DataError(
            f"{path}: expected a JSON list of COCO results, got a {type(preds).__name__}; "
            "write [{image_id, category_id, keypoints, score}, ...]"
        )
    for i, p in enumerate(preds):
        missing = [k for k in _RESULT_KEYS if not isinstance(p, dict) or k not in p]
        if missing:
            raise DataError(
                f"{path}: result {i} lacks {', '.join(missing)}; each result needs {', '.join(_RESULT_KEYS)}"
            )
        kpts = p["keypoints"]
        if not isinstance(kpts, list) or len(kpts) != 3 * num_keypoints:
            n = len(kpts) if isinstance(kpts, list) else type(kpts).__name__
            raise DataError(
                f"{path}: result {i} has {n} keypoint values, expected {3 * num_keypoints} "
                f"({num_keypoints} x 3: x, y, score)"
            )
        finite = (
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in [*kpts, p["score"]]
        )
        if not all(finite):
            raise DataError(
                f"{path}: result {i} has a keypoint or score that is not a finite number; "
                "write numbers only (no strings, NaN or Infinity)"
            )
        if not isinstance(p["image_id"], int) or isinstance(p["image_id"], bool):
            raise DataError(f"{path}: result {i} has image_id {p['image_id']!r}; COCO image ids are integers")
    gt_files = {r.image_id: r.file_name for r in gt.records}
    ids = {p["image_id"] for p in preds}
    unknown = sorted(ids - set(gt_files))
    if unknown:
        raise DataError(
            f"{path}: image_id {_ids(unknown)} ({len(unknown)} of the {len(ids)} ids in the file) not in the "
            f"ground truth ({_id_range(set(gt_files))}); predict on the ground-truth folder (`edgepose "
            "predict MODEL GT_DIR --save-json` writes its image ids) or pass the --gt these were made for"
        )
    _check_files_json(path, ids, gt_files)
    return preds


def _files_json(path: Path) -> dict[str, object] | None:
    """FILES_FILE beside the results file `path` (image id -> source file, as `predict --save-json`
    writes it), or None when there is none."""
    files_path = path.with_name(FILES_FILE)
    if not files_path.is_file():
        return None
    try:
        files = json.loads(files_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{files_path}: not valid JSON ({exc}); fix it or remove it") from exc
    if not isinstance(files, dict):
        raise DataError(f"{files_path}: expected a JSON object of image id -> file; fix it or remove it")
    return files


def _check_files_json(path: Path, ids: set[int], gt_files: dict[int, str]) -> None:
    """Each id's source file in FILES_FILE beside `path` (if there) has the ground truth's file name."""
    files = _files_json(path)
    if files is None:
        return
    wrong = []
    for i in sorted(ids):
        source, expected = files.get(str(i)), Path(gt_files[i]).name
        if isinstance(source, str) and "#frame=" not in source and Path(source).name != expected:
            wrong.append((i, source, expected))
    if wrong:
        i, source, expected = wrong[0]
        raise DataError(
            f"{path}: image_id {i} is {source} in {FILES_FILE} but {expected} in the ground truth "
            f"({len(wrong)} of {len(ids)} ids name other files): these predictions are numbered for "
            "other images; re-run `edgepose predict MODEL GT_DIR --save-json` (it writes the ground truth's "
            "ids) or pass the --gt they were made for"
        )


def unpredicted_images(path: Path, predictions: list[dict], gt: PoseDataset) -> tuple[list[int], bool]:
    """Ground-truth image ids the results file `path` has nothing for, and whether that is certain: with
    FILES_FILE beside it, the images that were not predicted at all (True); without, the images with
    people in them and no prediction (False: the model may just have found nobody there). Every person in
    them counts as missed."""
    files = _files_json(path)
    if files is not None:
        return [r.image_id for r in gt.records if str(r.image_id) not in files], True
    have = {p["image_id"] for p in predictions}
    # people COCOeval scores: with a labelled keypoint (a keypoint-less person is ignored, never missed)
    scored = [r.image_id for r in gt.records if (r.keypoints[..., 2] > 0).any()]  # keypoints (N, K, 3)
    return [i for i in scored if i not in have], False


def evaluate_keypoints(gt: str | Path | dict, predictions: list[dict]) -> KeypointMetrics:
    """COCO keypoint AP/AR of `predictions` (COCO results dicts) against ground truth (a JSON path or dict).

    Predictions must refer to image ids of the ground truth; an empty list scores 0.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    data, name = _gt_dict(gt)
    if not predictions:  # pycocotools' loadRes fails on an empty list; nothing found = 0 AP, 0 AR
        return KeypointMetrics(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    gt_ids = {img["id"] for img in data["images"]}
    anns = data["annotations"]
    k = len(anns[0]["keypoints"]) // 3 if anns else len(predictions[0].get("keypoints", [])) // 3
    for i, p in enumerate(predictions):  # the in-memory twin of load_predictions' checks
        if not isinstance(p, dict) or any(k not in p for k in _RESULT_KEYS):
            raise DataError(f"prediction {i} needs 'image_id', 'keypoints' and 'score' (COCO results format)")
        if p["image_id"] not in gt_ids:
            raise DataError(f"prediction {i} is for image id {p['image_id']}, which is not in {name}")
        if len(p["keypoints"]) != 3 * k:
            raise DataError(
                f"prediction {i} has {len(p['keypoints'])} keypoint values, "
                f"expected {3 * k} ({k} x 3) as in {name}"
            )
    results = [dict(p, category_id=p.get("category_id", 1)) for p in predictions]  # loadRes edits its input

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = data
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.array(sigmas_for(_keypoint_names(data, k)))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = [float(v) for v in ev.stats]
    return KeypointMetrics(ap=s[0], ap50=s[1], ap75=s[2], apm=s[3], apl=s[4], ar=s[5])


def _keypoint_names(data: dict, k: int) -> tuple[str, ...]:
    """The person category's keypoint names when it lists K of them, else COCO-17 or kpt_0.. by count."""
    for cat in data.get("categories", []):
        names = cat.get("keypoints") or []
        if len(names) == k:
            return tuple(str(n) for n in names)
    return COCO_KEYPOINTS if k == len(COCO_KEYPOINTS) else tuple(f"kpt_{i}" for i in range(k))
