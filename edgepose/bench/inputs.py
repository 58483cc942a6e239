"""What to benchmark: ONNX files as they are, or a checkpoint exported and quantized into cached variants."""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgepose.bench.cache import BenchCache, make_key
from edgepose.bench.progress import Progress, Warn
from edgepose.defaults import DEFAULT_OPSET, EVAL, MIXED_BUDGET
from edgepose.errors import ModelFileError
from edgepose.fsio import file_digest
from edgepose.spec import Precision

ONNX_SUFFIX = ".onnx"


def is_checkpoint(path: Path) -> bool:
    """A checkpoint is exported and quantized into variants; an ONNX file is benchmarked as it is."""
    return path.suffix.lower() != ONNX_SUFFIX


def needs_calib(has_checkpoint: bool, variants: Sequence[Precision]) -> bool:
    """Whether calibration images are needed: a checkpoint is quantized into some non-float variant."""
    return has_checkpoint and any(v is not Precision.FLOAT for v in variants)


class InputKind(str, enum.Enum):
    """What a model file given to bench is (runtime.SourceKind is where predict reads images from)."""

    CHECKPOINT = "checkpoint"
    ONNX = "onnx"


@dataclass(frozen=True)
class ModelInput:
    path: Path
    kind: InputKind
    digest: str  # sha256 of the bytes: duplicates are found by content, not by name
    label: str = ""  # the Model column: a name no other input shares (`unique_labels`)
    precision: Precision | None = None  # ONNX inputs: from the metadata, once checked (run._check_inputs)


@dataclass(frozen=True)
class Candidate:
    """One model file to measure."""

    label: str  # the Model column: the input's unique label (a checkpoint's, for each of its variants)
    path: Path
    source: InputKind
    variant: Precision | None  # known for checkpoint variants; ONNX files: read from metadata later
    cached: bool | None = None  # checkpoint variants: True when reused from the cache
    # sha256 of the float model this file is (a float file: itself) or was quantized from: ΔAP is taken
    # against the float row with the same one. Known for checkpoint variants; ONNX files: read later.
    lineage: str = ""
    digest: str = ""  # ONNX inputs: sha256 of the file itself


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """A name per path that no other path shares: its stem (`edgepose-n`), else with as many parent
    folders as tell it apart (runs/n/best.pt, runs/m/best.pt -> `n/best`, `m/best`), else the path as
    given (same folder and stem: `best.pt`, `best.onnx`)."""
    stems = [p.with_suffix("").parts for p in paths]

    def name(i: int, depth: int) -> str:
        return "/".join(stems[i][-depth:])

    labels = []
    for i, p in enumerate(paths):
        for depth in range(1, len(stems[i]) + 1):
            if all(name(i, depth) != name(j, depth) for j in range(len(paths)) if j != i):
                labels.append(name(i, depth))
                break
        else:
            labels.append(str(p))
    return labels


def resolve_inputs(paths: Sequence[str | os.PathLike[str]], warn: Warn) -> list[ModelInput]:
    """Check every model path exists; drop repeats of the same bytes with a warning (first one kept)."""
    out: list[ModelInput] = []
    seen: dict[str, Path] = {}
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise ModelFileError(
                f"{p}: no such file; pass a checkpoint (.pt) or an ONNX file from `edgepose export`"
            )
        if not p.is_file():
            raise ModelFileError(f"{p} is a folder; pass a checkpoint (.pt) or an ONNX file")
        digest = file_digest(p)
        if digest in seen:
            same = "given twice" if seen[digest].resolve() == p.resolve() else f"identical to {seen[digest]}"
            warn(f"{p} is {same}; benchmarking it once (rows are per distinct model file)")
            continue
        seen[digest] = p
        kind = InputKind.CHECKPOINT if is_checkpoint(p) else InputKind.ONNX
        out.append(ModelInput(p, kind, digest))
    labels = unique_labels([m.path for m in out])
    return [dataclasses.replace(m, label=label) for m, label in zip(out, labels, strict=True)]


def check_can_export() -> None:
    """Exporting a checkpoint needs the training extra (torch): on a base install this raises
    ModuleNotFoundError (one line at the CLI) before anything slow runs."""
    import torch  # noqa: F401


def prepare_checkpoint(
    model: ModelInput,
    variants: Sequence[Precision],
    *,
    calib: Path,
    num_calib: int | None,
    cache: BenchCache,
    threads: int | None,
    progress: Progress | None = None,
) -> list[Candidate]:
    """Export `model` (evaluation thresholds) and quantize the requested variants, reusing cached files."""
    from edgepose.export import export_model  # torch: only a checkpoint input needs it

    stem, label = model.path.stem, model.label or model.path.stem

    def tick(stage: str, done: int, total: int) -> None:
        if progress:
            progress(stage, done, total)

    # "size": files cached before export read the checkpoint's spec were built at its config's size.
    export_opts = {"step": "export", "checkpoint": model.digest, "opset": DEFAULT_OPSET, "size": "spec",
                   "conf": EVAL.conf, "iou": EVAL.iou, "max_det": EVAL.max_det}  # fmt: skip
    float_key = make_key(export_opts)

    def export(out: Path) -> None:
        tick(f"export {stem}", 0, 1)
        export_model(model.path, out, opset=DEFAULT_OPSET, conf=EVAL.conf, iou=EVAL.iou, max_det=EVAL.max_det)
        tick(f"export {stem}", 1, 1)

    float_path, float_cached = cache.get_or_make(f"{stem}-float", float_key, export)
    lineage = file_digest(float_path)  # every variant of this checkpoint is compared with this float file
    out = []
    if Precision.FLOAT in variants:
        out.append(Candidate(label, float_path, InputKind.CHECKPOINT, Precision.FLOAT, float_cached, lineage))
    quantized = [v for v in variants if v is not Precision.FLOAT]
    if not quantized:
        return out

    from edgepose.quant.calib import find_images, select_images
    from edgepose.quant.options import CalibMethod, HighPrecision
    from edgepose.quant.quantize import quantize_model

    images = select_images(find_images(calib), num_calib)  # fails early, one line, on a bad --calib
    # The `edgepose quantize` defaults; every option is part of the cache key.
    for variant in quantized:
        opts = {"step": "quantize", "float": float_key, "precision": variant.value, "num_calib": len(images),
                "method": CalibMethod.MINMAX.value, "budget": MIXED_BUDGET,
                "high_precision": HighPrecision.INT16.value}  # fmt: skip
        key = make_key(opts, images)

        def quantize(out_path: Path, variant: Precision = variant) -> None:
            quantize_model(
                float_path, calib, out_path, precision=variant, num_calib=len(images), budget=MIXED_BUDGET,
                high_precision=HighPrecision.INT16, method=CalibMethod.MINMAX, threads=threads,
                progress=lambda stage, d, n: tick(f"{stem} {variant.value}: {stage}", d, n),
            )  # fmt: skip

        path, cached = cache.get_or_make(f"{stem}-{variant.value}", key, quantize)
        out.append(Candidate(label, path, InputKind.CHECKPOINT, variant, cached, lineage))
    return out
