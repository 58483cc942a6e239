"""run_bench: models (+ variants) x val set -> accuracy, latency, kernels, size per model file -> reports.

Over 300 lines on purpose: this is the bench's orchestration read top to bottom (check inputs ->
candidates -> evaluate, float rows first -> rows -> settings -> reports), one short function per
step; what is measured lives in accuracy.py, latency.py, kernels.py and fidelity.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgepose import __version__, fsio
from edgepose.bench.accuracy import Accuracy, ValSet, evaluate, load_val
from edgepose.bench.cache import DEFAULT_CACHE_DIR, BenchCache
from edgepose.bench.defaults import DEFAULT_NUM_IMAGES
from edgepose.bench.fidelity import FidelityReferences, fidelity_cells
from edgepose.bench.inputs import (
    Candidate,
    InputKind,
    ModelInput,
    check_can_export,
    needs_calib,
    prepare_checkpoint,
    resolve_inputs,
)
from edgepose.bench.kernels import count_layers, optimized_kernels, read_nodes
from edgepose.bench.latency import Latency, measure_latencies
from edgepose.bench.progress import Progress, Warn, for_stage
from edgepose.bench.report import report_paths, write_reports
from edgepose.bench.result import BenchResult, BenchRow, fill_delta_ap
from edgepose.bench.variants import ALL_VARIANTS, high_precision_of, variant_label
from edgepose.data.coco_eval import AP_SCALE, AP_SCALE_KEY
from edgepose.defaults import BENCH_RUNS, BENCH_THREADS, BENCH_WARMUP, DEPLOY, EVAL
from edgepose.errors import ConfigError, ModelFileError
from edgepose.quant.fidelity import Fidelity
from edgepose.quant.options import HighPrecision
from edgepose.spec import QUANT_PLAN_KEY, QUANT_SOURCE_KEY, SCORE_THR_NAME, PoseSpec, Precision

if TYPE_CHECKING:
    from edgepose.runtime.estimator import PoseEstimator


def layers_16bit_pct(spec: PoseSpec, props: dict[str, str], model_path: Path) -> float | None:
    """% of weighted layers at 16 bits: from the precision, and for mixed from the plan in the metadata."""
    if spec.precision is Precision.FLOAT:
        return None
    if spec.precision is Precision.INT16:
        return 100.0
    if spec.precision is Precision.INT8:
        return 0.0
    plan = json.loads(props.get(QUANT_PLAN_KEY, "[]"))
    if high_precision_of(props) is not HighPrecision.INT16:
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
    group = lineage(cand, spec, est.session.get_modelmeta().custom_metadata_map)[0]
    meter = None
    if not group:  # a quantized file whose float model is not recorded: nothing to compare with
        on_image = None
    elif spec.precision is Precision.FLOAT and not refs.has(group):
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
    if not est.supports_override(SCORE_THR_NAME) and spec.conf_threshold > EVAL.conf:
        warn(
            f"{label}: the graph has no {SCORE_THR_NAME} input; evaluated at its baked-in score threshold "
            f"{spec.conf_threshold:g}, which understates AP (re-export with --conf {EVAL.conf})"
        )
    acc = evaluate(est, val, conf=EVAL.conf, iou=EVAL.iou, max_det=min(EVAL.max_det, spec.max_det),
                   progress=for_stage(progress, f"evaluate {label} {spec.precision.value}"),
                   on_image=on_image)  # fmt: skip
    return est, acc, meter.result() if meter is not None else None


def lineage(cand: Candidate, spec: PoseSpec, props: dict[str, str]) -> tuple[str, str]:
    """(sha256, file name) of the float model `cand` is or was quantized from: a float file is itself, a
    quantized file names its source in QUANT_SOURCE_KEY; ("", "") when it does not (quantized before
    edgepose recorded it)."""
    if cand.lineage:
        return cand.lineage, ""
    if spec.precision is Precision.FLOAT:
        return cand.digest, cand.path.name
    source = json.loads(props.get(QUANT_SOURCE_KEY, "{}"))
    return str(source.get("sha256", "")), str(source.get("file", ""))


def _row(
    cand: Candidate, est: PoseEstimator, acc: Accuracy, fid: Fidelity | None, lat: Latency, threads: int
) -> BenchRow:
    spec = est.spec
    kernels = optimized_kernels(cand.path, threads)
    props = est.session.get_modelmeta().custom_metadata_map
    m = acc.metrics
    ap = (m.ap, m.ap50, m.ap75, m.ar) if m is not None else (None, None, None, None)  # unlabelled: no AP
    return BenchRow(
        label=cand.label, model=str(cand.path), source=cand.source.value, variant=spec.precision,
        name=spec.name, input_size=tuple(spec.input_size), cached=cand.cached, ap=ap[0], ap50=ap[1],
        ap75=ap[2], ar=ap[3], num_images=acc.num_images, num_detections=acc.num_detections, p50_ms=lat.p50_ms,
        p90_ms=lat.p90_ms, fps=lat.fps, preprocess_ms=lat.preprocess_ms, inference_ms=lat.inference_ms,
        postprocess_ms=lat.postprocess_ms, runs=lat.runs, warmup=lat.warmup,
        size_bytes=cand.path.stat().st_size, layers_16bit_pct=layers_16bit_pct(spec, props, cand.path),
        kernels=kernels, variant_label=variant_label(spec.precision, props),
        lineage=lineage(cand, spec, props)[0], image_evals=acc.image_evals, **fidelity_cells(fid),
    )  # fmt: skip


def check_options(
    *, threads: int, runs: int, num_images: int | None, num_calib: int | None, warmup: int = BENCH_WARMUP
) -> None:
    """The numeric options, checked before anything slow runs."""
    if warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {warmup}; use e.g. --warmup {BENCH_WARMUP}")
    checks = (("--threads", threads, BENCH_THREADS), ("--runs", runs, BENCH_RUNS),
              ("--num-images", num_images, DEFAULT_NUM_IMAGES), ("--num-calib", num_calib, 100))  # fmt: skip
    for opt, value, example in checks:
        if value is not None and value < 1:
            raise ConfigError(f"{opt} must be >= 1, got {value}; use e.g. {opt} {example}")


def check_out(out: Path, *, force: bool = True) -> None:
    """Fail before the slow part when the reports could not be written, or (unless `force`, the CLI's
    --force) when `out` already holds one of them."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder for bench.json, bench.md and bench.png")
    for path in report_paths(out).values():
        fsio.check_new(path, force=force)


def _check_inputs(
    models: Sequence[str | os.PathLike[str]],
    data: str | os.PathLike[str],
    variants: Sequence[Precision],
    calib: str | os.PathLike[str] | None,
    *,
    num_calib: int | None,
    threads: int,
    num_images: int | None,
    warn: Warn,
) -> tuple[list[ModelInput], ValSet, np.ndarray]:
    """Every input checked before the slow part: the model files, the val set (and its first image, which
    latency is timed on), the calibration images and each ONNX file's metadata."""
    from edgepose.runtime.session import open_session
    from edgepose.runtime.sources import read_image

    if not models:
        raise ConfigError("no model given; pass checkpoints (.pt) or ONNX files")
    inputs = resolve_inputs(models, warn)
    if any(m.kind is InputKind.CHECKPOINT for m in inputs):
        check_can_export()
    val = load_val(data, num_images)
    image = read_image(val.dataset.image_path(val.dataset.records[0]))
    quantizing = needs_calib(any(m.kind is InputKind.CHECKPOINT for m in inputs), variants)
    if quantizing and calib is None:
        raise ConfigError("quantizing a checkpoint needs calibration images; pass --calib DIR")
    if quantizing:
        from edgepose.quant.calib import find_images, select_images

        select_images(find_images(calib), num_calib)  # fail fast: before any export or quantization
    # a bad ONNX (no metadata, not ONNX) is reported before any export; its precision is kept (float
    # rows are evaluated first) so the file is not opened again just to read it
    inputs = [
        dataclasses.replace(m, precision=open_session(m.path, threads)[1].precision)
        if m.kind is InputKind.ONNX else m
        for m in inputs
    ]  # fmt: skip
    return inputs, val, image


def _candidates(
    inputs: Sequence[ModelInput],
    variants: Sequence[Precision],
    *,
    calib: str | os.PathLike[str] | None,
    num_calib: int | None,
    cache: BenchCache,
    threads: int,
    progress: Progress | None,
) -> list[Candidate]:
    """The model files to measure: ONNX inputs as they are, checkpoints exported + quantized (cached)."""
    out: list[Candidate] = []
    for m in inputs:
        if m.kind is InputKind.ONNX:
            out.append(Candidate(m.label, m.path, InputKind.ONNX, m.precision, digest=m.digest))
        else:
            out += prepare_checkpoint(m, variants, calib=Path(calib) if calib else Path(),
                                      num_calib=num_calib, cache=cache, threads=threads,
                                      progress=progress)  # fmt: skip
    return out


def _evaluate_all(
    candidates: Sequence[Candidate], val: ValSet, *, threads: int, progress: Progress | None, warn: Warn
) -> list[tuple[PoseEstimator, Accuracy, Fidelity | None]]:
    """Every candidate's accuracy and fidelity, float rows first (the others are compared with them image
    by image); the result keeps the candidates' order."""
    refs = FidelityReferences()
    first = sorted(range(len(candidates)), key=lambda i: candidates[i].variant is not Precision.FLOAT)
    done = {i: _evaluate(candidates[i], val, threads=threads, progress=progress, warn=warn, refs=refs)
            for i in first}  # fmt: skip
    return [done[i] for i in range(len(candidates))]


def _rows(
    candidates: Sequence[Candidate],
    evaluated: Sequence[tuple[PoseEstimator, Accuracy, Fidelity | None]],
    lats: Sequence[Latency],
    *,
    threads: int,
    warn: Warn,
) -> list[BenchRow]:
    """One row per model file, ΔAP filled in; warns where a quantized file's float model is not known."""
    rows = [
        _row(c, est, acc, fid, lat, threads)
        for c, (est, acc, fid), lat in zip(candidates, evaluated, lats, strict=True)
    ]
    fill_delta_ap(rows)
    for cand, (est, _, _), row in zip(candidates, evaluated, rows, strict=True):
        if row.delta_ap_vs is not None:  # its float row is here (ΔAP may still be n/a: no labels)
            continue
        digest, name = lineage(cand, est.spec, est.session.get_modelmeta().custom_metadata_map)
        if not digest:
            warn(
                f"{row.label}: the float model it was quantized from is not recorded (quantized before "
                "edgepose recorded it); ΔAP n/a: quantize it again with `edgepose quantize` to compare"
            )
        else:
            warn(
                f"{row.label}: quantized from {name} (sha256 {digest[:12]}), which is not among the models "
                "benchmarked; ΔAP n/a: pass that float file too"
            )
    return rows


def _settings(
    val: ValSet,
    variants: Sequence[Precision],
    *,
    calib: str | os.PathLike[str] | None,
    num_calib: int | None,
    threads: int,
    runs: int,
    warmup: int,
    cache: BenchCache,
) -> dict[str, object]:
    """The conditions of the measurement: everything a reader of bench.json needs to compare figures."""
    import onnxruntime as ort

    return {
        "data": str(val.source), "labelled": val.labelled, "num_images": len(val),
        "val_image_sizes": val.size_counts(),
        "threads": threads, "runs": runs, "warmup": warmup,
        "batch": 1, "eval_setting": {"conf": EVAL.conf, "iou": EVAL.iou, "max_det": EVAL.max_det},
        "latency_setting": {"conf": DEPLOY.conf, "iou": DEPLOY.iou},
        "variants": [v.value for v in variants], "calib": str(calib) if calib else None,
        "num_calib": num_calib, "cache_dir": str(cache.root), AP_SCALE_KEY: AP_SCALE,
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, {platform.platform(terse=True)}",
        "python": platform.python_version(), "onnxruntime": ort.__version__, "edgepose": __version__,
    }  # fmt: skip


def run_bench(
    models: Sequence[str | os.PathLike[str]],
    data: str | os.PathLike[str],
    *,
    variants: Sequence[Precision] = ALL_VARIANTS,
    calib: str | os.PathLike[str] | None = None,
    num_calib: int | None = None,
    threads: int = BENCH_THREADS,
    runs: int = BENCH_RUNS,
    warmup: int = BENCH_WARMUP,
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
    if out_dir is not None:
        check_out(Path(out_dir))
    inputs, val, image = _check_inputs(models, data, variants, calib, num_calib=num_calib, threads=threads,
                                num_images=num_images, warn=on_warning)  # fmt: skip
    cache = BenchCache(Path(cache_dir))
    candidates = _candidates(inputs, variants, calib=calib, num_calib=num_calib, cache=cache, threads=threads,
                             progress=progress)  # fmt: skip
    evaluated = _evaluate_all(candidates, val, threads=threads, progress=progress, warn=on_warning)
    # Latency after all accuracy runs, every model timed in the same rounds (see measure_latencies), at the
    # deployment setting (what a board runs).
    lats = measure_latencies(
        [est for est, _, _ in evaluated],
        image,
        runs=runs,
        warmup=warmup,
        conf=DEPLOY.conf,
        iou=DEPLOY.iou,
        progress=for_stage(progress, f"latency, {len(candidates)} model(s) interleaved"),
    )
    rows = _rows(candidates, evaluated, lats, threads=threads, warn=on_warning)
    settings = _settings(val, variants, calib=calib, num_calib=num_calib, threads=threads, runs=runs,
                         warmup=warmup, cache=cache)  # fmt: skip
    result = BenchResult(
        rows, settings, warnings, [str(p) for p in cache.made], [str(p) for p in cache.reused]
    )
    result.settings["seconds"] = round(time.perf_counter() - t0, 1)
    if out_dir is not None:
        write_reports(result, out_dir)
    return result
