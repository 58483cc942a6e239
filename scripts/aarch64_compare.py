"""Compare aarch64 with x86-64 predictions of the same ONNX file; used by scripts/check_aarch64.py.

Pure functions on plain data (stdlib only), so that they run anywhere and are unit-tested on
hand-made prediction lists (tests/unit/test_aarch64_compare.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

FLOAT_TOL_PX, FLOAT_TOL_SCORE = 0.01, 1e-4  # issue 10: float must agree this closely across CPUs


@dataclass(frozen=True)
class Det:
    """One detection: box (x1, y1, x2, y2), score, keypoints flattened (x, y, conf) * K; image pixels."""

    box: tuple[float, ...]
    score: float
    keypoints: tuple[float, ...]


Detections = dict[str, list[Det]]  # image file -> detections in output order


def from_coco(predictions: Sequence[Mapping], files: Mapping[str, str]) -> Detections:
    """predictions.json (COCO results) + files.json -> per-file detections; images without people kept."""
    out: Detections = {path: [] for path in files.values()}
    for p in predictions:
        x, y, w, h = p["bbox"]
        kpts = tuple(float(v) for v in p["keypoints"])
        out[files[str(p["image_id"])]].append(Det((x, y, x + w, y + h), float(p["score"]), kpts))
    return out


@dataclass
class VariantDiff:
    """aarch64 vs x86-64 for one model file; the max differences cover detections found on both sides."""

    variant: str
    images: int
    host_dets: int
    arm_dets: int
    max_box: float = 0.0  # px, box corners
    max_kpt: float = 0.0  # px, keypoint x and y
    max_score: float = 0.0  # detection scores and keypoint confidences
    worst: str = ""  # where the largest pixel difference is
    identical: bool = True  # every number bit-identical
    mismatches: list[str] = field(default_factory=list)  # different images or detection counts


def _max(a: float, b: float) -> float:
    """max() that keeps NaN (the builtin keeps or drops it depending on argument order)."""
    return a + b if math.isnan(a) or math.isnan(b) else max(a, b)


def _maxdiff(xs: Sequence[float], ys: Sequence[float]) -> float:
    out = 0.0
    for x, y in zip(xs, ys, strict=True):
        out = _max(out, abs(x - y))
    return out


def _xy(kpts: tuple[float, ...]) -> list[float]:
    return [v for j, v in enumerate(kpts) if j % 3 != 2]


def compare_detections(variant: str, host: Detections, arm: Detections) -> VariantDiff:
    """Pair detections by image and position (the same order is expected) and take max differences."""
    d = VariantDiff(variant, len(host), sum(map(len, host.values())), sum(map(len, arm.values())))
    if set(host) != set(arm):
        odd = sorted(set(host) ^ set(arm))[0]
        d.mismatches.append(f"different image sets: {len(host)} vs {len(arm)} images ({odd} on one side)")
    worst_px = -1.0
    for name in sorted(set(host) & set(arm)):
        h, a = host[name], arm[name]
        if len(h) != len(a):
            d.mismatches.append(f"{Path(name).name}: {len(h)} detections on x86-64, {len(a)} on aarch64")
        for i, (dh, da) in enumerate(zip(h, a, strict=False)):  # unequal lengths are reported above
            box, kpt = _maxdiff(dh.box, da.box), _maxdiff(_xy(dh.keypoints), _xy(da.keypoints))
            score = _maxdiff((dh.score, *dh.keypoints[2::3]), (da.score, *da.keypoints[2::3]))
            d.max_box, d.max_kpt, d.max_score = (
                _max(d.max_box, box),
                _max(d.max_kpt, kpt),
                _max(d.max_score, score),
            )
            px = _max(box, kpt)
            if not math.isnan(worst_px) and not px <= worst_px:  # the first NaN stays the worst
                worst_px, d.worst = px, f"{Path(name).name} detection {i}"
            d.identical = d.identical and dh == da
    d.identical = d.identical and not d.mismatches
    return d


def tolerance_failures(d: VariantDiff, tol_px: float, tol_score: float) -> list[str]:
    """One line per broken rule; empty when within tolerance. NaN is beyond any tolerance."""
    out = list(d.mismatches)
    for what, value, tol, unit in (
        ("box", d.max_box, tol_px, " px"),
        ("keypoint", d.max_kpt, tol_px, " px"),
        ("score", d.max_score, tol_score, ""),
    ):
        if not value <= tol:  # `not <=` so that NaN fails
            out.append(f"{d.variant}: max {what} difference {value:.3g}{unit} > {tol:g}{unit} at {d.worst}")
    return out


def load_raw(path: Path) -> Detections:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: [Det(tuple(b), s, tuple(kp)) for b, s, kp in v] for k, v in data.items()}


def load_coco(folder: Path) -> Detections:
    preds = json.loads((folder / "predictions.json").read_text(encoding="utf-8"))
    return from_coco(preds, json.loads((folder / "files.json").read_text(encoding="utf-8")))
