"""run_bench: models (+ variants) x val set -> accuracy, latency, kernels, size per model file -> reports."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgepose import __version__, fsio
from edgepose.bench.accuracy import EVAL_CONF, EVAL_IOU, EVAL_MAX_DET, Accuracy, ValSet, evaluate, load_val
from edgepose.bench.cache import DEFAULT_CACHE_DIR, BenchCache
from edgepose.bench.fidelity import FidelityReferences, fidelity_cells
from edgepose.bench.inputs import Candidate, SourceKind, prepare_checkpoint, resolve_inputs
from edgepose.bench.kernels import count_layers, optimized_kernels, read_nodes
from edgepose.bench.latency import (
    DEFAULT_RUNS,
    DEFAULT_WARMUP,
    DEPLOY_CONF,
    DEPLOY_IOU,
    Latency,
    measure_latencies,
)
from edgepose.bench.report import write_reports
from edgepose.bench.result import BenchResult, BenchRow, fill_delta_ap
from edgepose.bench.variants import ALL_VARIANTS
from edgepose.errors import ConfigError, ModelFileError
from edgepose.quant.fidelity import Fidelity
from edgepose.spec import METADATA_PREFIX, SCORE_THR_NAME, PoseSpec, Precision

if TYPE_CHECKING:
    from edgepose.runtime.estimator import PoseEstimator

Progress = Callable[[str, int, int], None]  # (stage, done, total)
Warn = Callable[[str], None]
DEFAULT_THREADS = 2
QUANT_PLAN_KEY = METADATA_PREFIX + "quant_plan"  # spelled in edgepose.quant.graph, which needs onnx
QUANT_METHOD_KEY = METADATA_PREFIX + "quant_method"


def layers_16bit_pct(spec: PoseSpec, props: dict[str, str], model_path: Path) -> float | None:
    """% of weighted layers at 16 bits: from the precision, and for mixed from the plan in the metadata."""
    if spec.precision is Precision.FLOAT:
        return None
    if spec.precision is Precision.INT16:
        return 100.0
    if spec.precision is Precision.INT8:
        return 0.0
    plan = json.loads(props.get(QUANT_PLAN_KEY, "[]"))
    method = json.loads(props.get(QUANT_METHOD_KEY, "{}"))
    if method.get("high_precision", "int16") != "int16":
        return 0.0  # the plan's layers are float, not 16-bit
    layers = count_layers(read_nodes(model_path))
    return 100.0 * len(plan) / max(1, layers)


def _evaluate(
    cand: Candidate,
    val: ValSet,
    *,
    threads: int,
    progress: Progress | None,
    warn: Warn,
    refs: FidelityReferences,
) -> tuple[PoseEstimator, Accuracy, Fidelity | None]:
    """Open `cand` and score its accuracy on `val` (evaluation setting), and its fidelity to float."""
    from edgepose.runtime.estimator import PoseEstimator

    est = PoseEstimator(cand.path, threads=threads)
    spec = est.spec
    group = _group(cand, spec)
    meter = None
    if spec.precision is Precision.FLOAT and not refs.has(group):
        on_image = refs.recorder(group, spec.sigmas)
    elif spec.precision is not Precision.FLOAT and (hook := refs.comparer(group, spec.sigmas)):
        on_image, meter = hook
    else:
        on_image = None
    label = cand.label
    if cand.variant is not None and spec.precision is not cand.variant:  # a cache file replaced by hand
        raise ModelFileError(
            f"{cand.path}: metadata says {spec.precision.value}, expected {cand.variant.value}; delete "
            "the file (the bench cache is safe to delete) and run again"
        )
    if not est.supports_override(SCORE_THR_NAME) and spec.conf_threshold > EVAL_CONF:
        warn(
            f"{label}: the graph has no {SCORE_THR_NAME} input; evaluated at its baked-in score threshold "
            f"{spec.conf_threshold:g}, which understates AP (re-export with --conf {EVAL_CONF})"
        )
    stage = f"evaluate {label} {spec.precision.value}"
    acc = evaluate(est, val, conf=EVAL_CONF, iou=EVAL_IOU, max_det=min(EVAL_MAX_DET, spec.max_det),
                   progress=(lambda d, n: progress(stage, d, n)) if progress else None,
                   on_image=on_image)  # fmt: skip
    return est, acc, meter.result() if meter is not None else None


def _group(cand: Candidate, spec: PoseSpec) -> str:
    return cand.group or f"{spec.name}@{spec.input_size[0]}x{spec.input_size[1]}"


def mixed_flavour(props: dict[str, str]) -> str:
    """'cpu-float' (float islands, for CPUs) or 'npu16' (16-bit islands, emulating an NPU); '' otherwise."""
    high = json.loads(props.get(QUANT_METHOD_KEY, "{}")).get("high_precision")
    return {"float": "cpu-float", "int16": "npu16"}.get(high or "", "")


def _row(
    cand: Candidate, est: PoseEstimator, acc: Accuracy, fid: Fidelity | None, lat: Latency, threads: int
) -> BenchRow:
    spec = est.spec
    kernels = optimized_kernels(cand.path, threads)
    props = est.session.get_modelmeta().custom_metadata_map
    m = acc.metrics
    return BenchRow(
        label=cand.label, model=str(cand.path), source=cand.source.value, variant=spec.precision,
        name=spec.name, input_size=tuple(spec.input_size), cached=cand.cached, ap=m.ap, ap50=m.ap50,
        ap75=m.ap75, ar=m.ar, num_images=acc.num_images, num_detections=acc.num_detections, p50_ms=lat.p50_ms,
        p90_ms=lat.p90_ms, fps=lat.fps, preprocess_ms=lat.preprocess_ms, inference_ms=lat.inference_ms,
        postprocess_ms=lat.postprocess_ms, runs=lat.runs, warmup=lat.warmup,
        size_bytes=cand.path.stat().st_size, layers_16bit_pct=layers_16bit_pct(spec, props, cand.path),
        kernels=kernels, group=_group(cand, spec), flavour=mixed_flavour(props), **fidelity_cells(fid),
    )  # fmt: skip


def check_options(
    *, threads: int, runs: int, num_images: int | None, num_calib: int | None, warmup: int = DEFAULT_WARMUP
) -> None:
    """The numeric options, checked before anything slow runs."""
    if warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {warmup}; use e.g. --warmup {DEFAULT_WARMUP}")
    checks = (("--threads", threads, 2), ("--runs", runs, 50), ("--num-images", num_images, 200),
              ("--num-calib", num_calib, 100))  # fmt: skip
    for opt, value, example in checks:
        if value is not None and value < 1:
            raise ConfigError(f"{opt} must be >= 1, got {value}; use e.g. {opt} {example}")


def _check_out(out: Path) -> None:
    """Fail before the slow part when the reports could not be written."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder for bench.json, bench.md and bench.png")
    fsio.check_parent(out / "bench.json" if out.is_dir() else out)


def _onnx_candidate(path: Path) -> Candidate:
    return Candidate(str(path), path, SourceKind.ONNX, None)


def run_bench(
    models: Sequence[str | os.PathLike[str]],
    data: str | os.PathLike[str],
    *,
    variants: Sequence[Precision] = ALL_VARIANTS,
    calib: str | os.PathLike[str] | None = None,
    num_calib: int | None = None,
    threads: int = DEFAULT_THREADS,
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
    num_images: int | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
    progress: Progress | None = None,
    warn: Warn | None = None,
) -> BenchResult:
    """Benchmark `models` (checkpoints -> `variants`, ONNX files as they are) on the val set `data`.

    Every problem with an input is raised before the slow part. Reports are written to `out_dir`
    when given. `warn` receives each warning as it happens (all are also in the result).
    """
    t0 = time.perf_counter()
    warnings: list[str] = []

    def on_warning(message: str) -> None:
        warnings.append(message)
        if warn:
            warn(message)

    check_options(threads=threads, runs=runs, num_images=num_images, num_calib=num_calib)
    if not models:
        raise ConfigError("no model given; pass checkpoints (.pt) or ONNX files")
    if out_dir is not None:
        _check_out(Path(out_dir))
    inputs = resolve_inputs(models, on_warning)
    val = load_val(data, num_images)
    from edgepose.runtime.sources import read_image

    image = read_image(val.dataset.image_path(val.dataset.records[0]))  # the latency image
    checkpoints = [m for m in inputs if m.kind is SourceKind.CHECKPOINT]
    if checkpoints and any(v is not Precision.FLOAT for v in variants) and calib is None:
        raise ConfigError("quantizing a checkpoint needs calibration images; pass --calib DIR")
    if checkpoints and any(v is not Precision.FLOAT for v in variants):
        from edgepose.quant.calib import find_images, select_images

        select_images(find_images(calib), num_calib)  # fail fast: before any export or quantization
    from edgepose.runtime.session import open_session

    precision: dict[Path, Precision] = {}
    for m in inputs:  # fail fast: a bad ONNX (no metadata, not ONNX) is reported before any export
        if m.kind is SourceKind.ONNX:
            precision[m.path] = open_session(m.path, threads)[1].precision

    cache = BenchCache(Path(cache_dir))
    candidates: list[Candidate] = []
    for m in inputs:
        if m.kind is SourceKind.ONNX:
            candidates.append(_onnx_candidate(m.path))
        else:
            candidates += prepare_checkpoint(m, variants, calib=Path(calib) if calib else Path(),
                                             num_calib=num_calib, cache=cache, threads=threads,
                                             progress=progress)  # fmt: skip

    # Float rows first: the others are compared with them image by image (fidelity); table order kept.
    refs = FidelityReferences()
    kind = [c.variant or precision.get(c.path) for c in candidates]
    first = sorted(range(len(candidates)), key=lambda i: kind[i] is not Precision.FLOAT)
    done = {i: _evaluate(candidates[i], val, threads=threads, progress=progress, warn=on_warning, refs=refs)
            for i in first}  # fmt: skip
    evaluated = [done[i] for i in range(len(candidates))]
    # Latency after all accuracy runs, every model timed in the same rounds (see measure_latencies).
    stage = f"latency, {len(candidates)} model(s) interleaved"
    lats = measure_latencies(
        [est for est, _, _ in evaluated],
        image,
        runs=runs,
        warmup=warmup,
        conf=DEPLOY_CONF,
        iou=DEPLOY_IOU,
        progress=(lambda d, n: progress(stage, d, n)) if progress else None,
    )
    rows: list[BenchRow] = []
    warned_sizes: set[tuple[int, int]] = set()
    val_size = val.typical_size()
    for cand, (est, acc, fid), lat in zip(candidates, evaluated, lats, strict=True):
        row = _row(cand, est, acc, fid, lat, threads)
        if row.input_size != val_size and row.input_size not in warned_sizes:
            warned_sizes.add(row.input_size)
            h, w = row.input_size
            vh, vw = val_size
            on_warning(
                f"model input {h}x{w} ({row.label}) differs from the val images ({vh}x{vw}); letterbox "
                "resizes every image to the model input, so accuracy is measured at the model's size"
            )
        rows.append(row)
    fill_delta_ap(rows)
    import onnxruntime as ort

    settings: dict[str, object] = {
        "data": str(val.source), "num_images": len(val), "threads": threads, "runs": runs, "warmup": warmup,
        "batch": 1, "eval_setting": {"conf": EVAL_CONF, "iou": EVAL_IOU, "max_det": EVAL_MAX_DET},
        "latency_setting": {"conf": DEPLOY_CONF, "iou": DEPLOY_IOU},
        "variants": [v.value for v in variants], "calib": str(calib) if calib else None,
        "num_calib": num_calib, "cache_dir": str(cache.root), "ap_scale": "fraction in [0, 1]",
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, {platform.platform(terse=True)}",
        "python": platform.python_version(), "onnxruntime": ort.__version__, "edgepose": __version__,
    }  # fmt: skip
    result = BenchResult(
        rows, settings, warnings, [str(p) for p in cache.made], [str(p) for p in cache.reused]
    )
    result.settings["seconds"] = round(time.perf_counter() - t0, 1)
    if out_dir is not None:
        write_reports(result, out_dir)
    return result
