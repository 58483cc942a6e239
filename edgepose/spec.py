"""PoseSpec: the facts a deployed model carries with it, and the I/O names, spelled once.

Standard library only: the runtime on a board reads this from an ONNX file's
metadata_props without torch or onnx installed.

End-to-end graph contract (what `edgepose export` writes and `edgepose.runtime` reads):

inputs
  INPUT_NAME        (B, 3, H, W) RGB, float32 in [0, 1] or uint8 in [0, 255] (spec.input_format),
                    letterboxed with `letterbox_color` to (H, W) = spec.input_size
  SCORE_THR_NAME    () float32, optional override, default baked in as an initializer
  IOU_THR_NAME      () float32, optional override, default baked in
  MAX_DET_NAME      () int64,   optional override (<= spec.max_det), default baked in
outputs
  DETECTIONS_NAME   (B, max_det, 6 + 3K) float32, zero-padded:
                    x1, y1, x2, y2, score, class, then K x (x, y, conf); network-input pixels
  NUM_DETS_NAME     (B,) int64, number of valid rows per image
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from edgepose.defaults import DEPLOY, LETTERBOX_COLOR

# --- tensor and node names, spelled once --------------------------------------------------
INPUT_NAME = "images"
SCORE_THR_NAME = "score_threshold"
IOU_THR_NAME = "iou_threshold"
MAX_DET_NAME = "max_detections"
DETECTIONS_NAME = "detections"
NUM_DETS_NAME = "num_detections"
RAW_OUTPUT_PREFIX = "raw_s"  # raw-head graphs (--no-nms): one output per level, e.g. "raw_s8"
TAIL_PREFIX = "ep_tail/"  # every node of the decode + NMS tail starts with this; quant keeps it float
METADATA_PREFIX = "edgepose."  # every metadata_props key we write starts with this
# Written by quantization beside the PoseSpec keys, read by bench (which must not need onnx):
QUANT_PLAN_KEY = METADATA_PREFIX + "quant_plan"  # JSON list: the layers --mixed kept at high precision
QUANT_METHOD_KEY = METADATA_PREFIX + "quant_method"  # JSON object: calibration method, high precision, ...
# JSON object {"sha256": ..., "file": ...}: the float file a quantized model was made from (its lineage), so
# bench compares each quantized file with its own float model, whatever the files are called.
QUANT_SOURCE_KEY = METADATA_PREFIX + "quant_source"

# --- files ---------------------------------------------------------------------------------------
# What every folder reader (predict, quantize --calib, data readers, preview) accepts as an image.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
IMAGE_PATTERNS = ", ".join("*" + s for s in IMAGE_SUFFIXES)  # what "no images" messages say was looked for


def image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder` (IMAGE_SUFFIXES, any case), sorted by name: the one listing
    behind every folder reader. OSError (an unreadable folder) is the caller's to word."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


ANNOTATIONS_FILE = "annotations.json"  # a COCO-keypoints dataset folder: ANNOTATIONS_FILE + images/
PREDICTIONS_FILE = "predictions.json"  # `predict --save-json`: COCO results list (pycocotools loadRes format)
FILES_FILE = "files.json"  # beside it: image_id -> source file (video frames as "PATH#frame=N")

# --- COCO-17 person keypoints ------------------------------------------------------------------
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
# 0-based pairs (COCO's own JSON uses 1-based; readers/writers convert).
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
COCO_FLIP_INDEX: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
# Per-keypoint OKS sigmas from the COCO keypoint evaluation.
COCO_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip
# A keypoint COCO does not name gets the mean COCO sigma (~0.067): a middle-sized tolerance.
FALLBACK_SIGMA = round(sum(COCO_SIGMAS) / len(COCO_SIGMAS), 4)


def sigmas_for(names: Sequence[str]) -> tuple[float, ...]:
    """OKS sigma of each keypoint, by name: COCO's value for a COCO keypoint name, else FALLBACK_SIGMA."""
    coco = dict(zip(COCO_KEYPOINTS, COCO_SIGMAS, strict=True))
    return tuple(coco.get(n, FALLBACK_SIGMA) for n in names)


def flip_index_for(names: Sequence[str]) -> tuple[int, ...]:
    """Mirror partner of each keypoint by name (left* <-> right*); itself when it has none."""
    pos = {n: i for i, n in enumerate(names)}
    out = []
    for n in names:
        partner = n.replace("left", "\0").replace("right", "left").replace("\0", "right")
        out.append(pos.get(partner, pos[n]))
    return tuple(out)


def row_width(num_keypoints: int) -> int:
    """Columns of one detection row: box (4) + score + class + K x (x, y, conf)."""
    return 6 + 3 * num_keypoints


class InputFormat(str, enum.Enum):
    FLOAT = "float"  # float32 RGB in [0, 1]
    UINT8 = "uint8"  # uint8 RGB in [0, 255]; the graph converts


class GraphKind(str, enum.Enum):
    END2END = "end2end"  # decode + NMS inside; DETECTIONS_NAME / NUM_DETS_NAME outputs
    RAW = "raw"  # raw head maps only (for vendor compilers)


class Precision(str, enum.Enum):
    FLOAT = "float"
    INT16 = "int16"
    INT8 = "int8"
    MIXED = "mixed"


@dataclass(frozen=True)
class PoseSpec:
    """What a model needs at deployment: input geometry, keypoint semantics, thresholds."""

    name: str = "edgepose"
    input_size: tuple[int, int] = (256, 256)  # (H, W)
    input_format: InputFormat = InputFormat.FLOAT
    strides: tuple[int, ...] = (8, 16, 32)
    keypoint_names: tuple[str, ...] = COCO_KEYPOINTS
    skeleton: tuple[tuple[int, int], ...] = COCO_SKELETON
    flip_index: tuple[int, ...] = COCO_FLIP_INDEX
    conf_threshold: float = DEPLOY.conf
    iou_threshold: float = DEPLOY.iou
    max_det: int = DEPLOY.max_det
    letterbox_color: int = LETTERBOX_COLOR
    graph: GraphKind = GraphKind.END2END
    precision: Precision = Precision.FLOAT
    version: str = field(default="")  # edgepose version that wrote the file

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def det_width(self) -> int:
        """Columns of one detection row: box (4) + score + class + K x (x, y, conf)."""
        return row_width(self.num_keypoints)

    @property
    def sigmas(self) -> tuple[float, ...]:
        """OKS sigma of each keypoint, chosen by name (`sigmas_for`)."""
        return sigmas_for(self.keypoint_names)

    def replace(self, **changes: object) -> PoseSpec:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(data)
        if unknown:
            raise TypeError(f"PoseSpec has no field(s) {sorted(unknown)}")
        data.update(changes)
        return _coerce(data)

    # --- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, enum.Enum):
                d[k] = v.value
        return d

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PoseSpec:
        known = {f.name for f in fields(cls)}
        return _coerce({k: v for k, v in data.items() if k in known})

    def to_metadata(self) -> dict[str, str]:
        """metadata_props entries: one key per field, JSON-encoded values."""
        return {METADATA_PREFIX + k: json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_metadata(cls, props: dict[str, str]) -> PoseSpec:
        """Inverse of `to_metadata`; raises KeyError when the props hold no edgepose spec."""
        ours = {k[len(METADATA_PREFIX) :]: v for k, v in props.items() if k.startswith(METADATA_PREFIX)}
        if "input_size" not in ours:
            raise KeyError("no edgepose metadata")
        return cls.from_dict({k: json.loads(v) for k, v in ours.items()})


def _coerce(d: dict[str, object]) -> PoseSpec:
    """Build a PoseSpec from JSON-ish values (lists -> tuples, strings -> enums)."""
    out = dict(d)
    if "input_size" in out:
        out["input_size"] = tuple(int(v) for v in out["input_size"])  # type: ignore[union-attr]
    for k in ("strides", "flip_index"):
        if k in out:
            out[k] = tuple(int(v) for v in out[k])  # type: ignore[union-attr]
    if "keypoint_names" in out:
        out["keypoint_names"] = tuple(str(v) for v in out["keypoint_names"])  # type: ignore[union-attr]
    if "skeleton" in out:
        out["skeleton"] = tuple((int(a), int(b)) for a, b in out["skeleton"])  # type: ignore[union-attr]
    for k, enum_cls in (("input_format", InputFormat), ("graph", GraphKind), ("precision", Precision)):
        if k in out:
            out[k] = enum_cls(out[k])
    return PoseSpec(**out)  # type: ignore[arg-type]
