"""quantize_model: float edgepose export -> 8-bit, 16-bit or task-aware mixed QDQ model + report.

Stages (onnxruntime.quantization does the quantizing; edgepose.quant.engine holds the measured ones):
[equalize] -> calibrate the network body ONCE (ranges for every tensor, cached) -> 8-bit
optimizations, each kept only if the real quantized model measures closer to float (ranges,
rounding, bias correction) -> [mixed: task-sensitivity probe (or its cache), plan search measured
plan by plan] -> quantize_static with the plan -> tail (and float islands) kept float -> [bias
correction of the final plan] -> fidelity of the written model -> report -> `onnxkit.finalize` (IR
pin, metadata, onnx.checker, atomic write of the model, its report and the probe cache).

Measured on YOLO11n-pose (64 photos calibrate, 66 others evaluate): clipping every range to its MSE
optimum or to percentiles lowered keypoint error but raised score error and AP fell (mean OKS 0.950,
score Δ 0.076, AP -4.3 vs min/max -2.6), so only saturating sides are clipped (ranges.py).

onnxruntime's `quant_pre_process` is deliberately not run: `edgepose export` already simplified the
graph (onnxslim: BatchNorm folded, constants folded, shapes inferred) and quantize_static runs its own
shape inference, while the pre-processor's graph optimizer may fuse or rename nodes (the tail's
TAIL_PREFIX names, the plan's layer names) and does not promise to keep metadata_props.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import create_calibrator, quantize_static
from onnxruntime.quantization.calibrate import save_tensors_data

from edgepose import __version__, defaults, fsio
from edgepose.errors import ConfigError
from edgepose.onnxkit.graph import default_opset
from edgepose.onnxkit.model import finalize, metadata
from edgepose.quant import probecache
from edgepose.quant.calib import CalibrationSet, check_calibration
from edgepose.quant.engine import (
    Engine,
    MixedOutcome,
    equalized,
    final_bias_pass,
    keep_equalization,
    layer_rows,
    merge_for_plan,
)
from edgepose.quant.fidelity import Fidelity, nmse
from edgepose.quant.graph import (
    body_model,
    find_layers,
    float_nodes,
    load_float_model,
    raw_head_outputs,
    upgrade_opset,
)
from edgepose.quant.islands import island_nodes, keep_float
from edgepose.quant.optimize import OptimizationLog, Options
from edgepose.quant.options import CalibMethod, HighPrecision, LayerPrecision, Progress
from edgepose.quant.plan import (
    OPSET_16BIT,
    QUANT_FORMAT,
    PrecisionPlan,
    calibrator_options,
    ort_method,
    quantize_static_args,
)
from edgepose.quant.report import QuantReport
from edgepose.quant.tailfix import keep_tail_float
from edgepose.quant.taskplan import describe_trials
from edgepose.runtime.session import cpu_session
from edgepose.spec import (
    INPUT_NAME,
    METADATA_PREFIX,
    QUANT_METHOD_KEY,
    QUANT_PLAN_KEY,
    QUANT_SOURCE_KEY,
    PoseSpec,
    Precision,
)

NUM_PROBE_IMAGES = 8
CALIB_CHUNK = 8  # images per calibrator pass: every tensor of every image is held until the pass ends


def default_output(model_path: str | os.PathLike[str], precision: Precision) -> Path:
    p = Path(model_path)
    return p.with_name(f"{p.stem}.{precision.value}.onnx")


def report_path(out_path: str | os.PathLike[str]) -> Path:
    """MODEL.onnx -> MODEL.quant.json beside it."""
    p = Path(out_path)
    return p.with_name(f"{p.stem}.quant.json")


def check_options(precision: Precision, budget: float | None, max_drop: float | None) -> None:
    if precision is Precision.FLOAT:
        raise ConfigError("precision float is not a quantization; choose --bits 8, --bits 16 or --mixed")
    if budget is not None and not (0.0 < budget < 1.0):
        raise ConfigError(
            f"--budget {budget} is outside (0, 1); it is the fraction of layers kept at high precision, "
            f"e.g. {defaults.MIXED_BUDGET}"
        )
    if max_drop is not None and not (0.0 < max_drop < 1.0):
        raise ConfigError(
            f"--max-drop {max_drop} is outside (0, 1); it is the largest drop in fidelity to float "
            "(1 - mean OKS x score agreement with the float model's people), e.g. 0.01"
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime.quantization logs advice ("consider pre-processing") through the root logger."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


class _Stages:
    """Times the stages (seconds by stage name) and reports their start and end to `progress`."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress, self.seconds = progress, {}

    def tick(self, stage: str, done: int = 1, total: int = 1) -> None:
        if self.progress:
            self.progress(stage, done, total)

    @contextlib.contextmanager
    def stage(self, name: str, *, ticks: bool = True) -> Iterator[None]:
        """`ticks=False` for a stage that reports its own progress."""
        if ticks:
            self.tick(name, 0, 1)
        t = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
        if ticks:
            self.tick(name, 1, 1)


def _calibrate(body: onnx.ModelProto, calib: CalibrationSet, method: CalibMethod, tmp: Path) -> Path:
    """Ranges for every body tensor, computed once and saved as onnxruntime's calibration cache."""
    tmp.mkdir(exist_ok=True)
    body_path = tmp / "body.onnx"
    onnx.save(body, str(body_path))
    with _quiet():
        calibrator = create_calibrator(
            body_path,
            None,
            augmented_model_path=str(tmp / "augmented.onnx"),
            calibrate_method=ort_method(method),
            extra_options=calibrator_options(method),
        )
        for start in range(0, len(calib), CALIB_CHUNK):  # bounded memory; each call merges its ranges
            calibrator.collect_data(calib.reader(start, start + CALIB_CHUNK))
        ranges = calibrator.compute_data()
    cache = tmp / "calibration.json"
    save_tensors_data(ranges, cache)
    return cache


def _quantize(
    model: onnx.ModelProto, plan: PrecisionPlan, cache: Path, method: CalibMethod, tmp: Path, tag: str
) -> onnx.ModelProto:
    """One quantize_static run of `model` under `plan`, ranges from `cache`; the tail and the plan's
    float layers (islands) forced float."""
    prepared = upgrade_opset(model, OPSET_16BIT) if plan.uses_16bit else model
    layers = find_layers(prepared)
    args = quantize_static_args(
        plan, layers, prepared.graph, [n.name for n in float_nodes(prepared) if n.name]
    )
    out = tmp / f"{tag}.onnx"
    with _quiet():
        quantize_static(
            prepared, out, None, calibrate_method=ort_method(method), calibration_cache_path=cache, **args
        )
    q = onnx.load(str(out))
    keep_tail_float(q, prepared)
    floats = [la for la in layers if plan.of(la.name) is LayerPrecision.FLOAT]
    if floats:
        tail = {n.name for n in float_nodes(prepared)}
        keep_float(q, set(island_nodes(floats, prepared.graph, tail)))
    return q


def raw_outputs(
    model: onnx.ModelProto,
    images: Sequence[np.ndarray],
    threads: int | None = None,
    names: Sequence[str] | None = None,
) -> list[list[np.ndarray]]:
    """The raw head outputs (what the tail reads) for each image; a body graph's outputs (no tail).

    `names` fixes which tensors, in which order: a quantized copy may list its tail's inputs in another
    graph order than the float model (ER-Pose's TopK tail does), and `nmse` pairs outputs by position.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    names = list(names or raw_head_outputs(model) or [o.name for o in model.graph.output])
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names if n not in have
    )
    sess = cpu_session(m.SerializeToString(), threads)
    return [sess.run(names, {INPUT_NAME: x}) for x in images]


@dataclass
class _Run:
    """What one quantize_model call carries from stage to stage."""

    model_path: Path
    precision: Precision
    method: CalibMethod
    high_precision: HighPrecision
    budget: float | None
    max_drop: float | None
    latency_aware: bool
    options: Options
    calib: CalibrationSet
    tmp: Path
    stages: _Stages
    threads: int | None
    num_probe_images: int
    log: OptimizationLog = field(default_factory=OptimizationLog)
    notes: list[str] = field(default_factory=list)
    probe_key: str = ""
    cached: list[float] | None = None  # task sensitivities from an earlier flavour's run

    @property
    def mixed(self) -> bool:
        return self.precision is Precision.MIXED

    def build(self, m: onnx.ModelProto, plan: PrecisionPlan, cache: Path, tag: str) -> onnx.ModelProto:
        return _quantize(m, plan, cache, self.method, self.tmp, tag)


def _start(run: _Run, model: onnx.ModelProto, spec: PoseSpec) -> Engine:
    """Equalize (when it measures better) and calibrate: the engine every later stage measures with."""
    original = model
    eq, pairs = equalized(model, run.options.equalize if run.precision is not Precision.INT16 else False)
    with run.stages.stage("calibrate"):
        cache = _calibrate(body_model(eq), run.calib, run.method, run.tmp)
    engine = Engine(eq, spec, run.calib, cache, run.tmp, run.build, run.threads, run.num_probe_images,
                    run.stages.tick)  # fmt: skip
    if pairs:

        def plain(m: onnx.ModelProto) -> Path:
            return _calibrate(body_model(m), run.calib, run.method, run.tmp / "plain")

        engine = keep_equalization(original, engine, pairs, run.method, run.log, plain, run.options.equalize)
    return engine


def _mixed(run: _Run, engine: Engine, m8: onnx.ModelProto, cache8: Path, fid_int8: Fidelity) -> MixedOutcome:
    """--mixed: the task-sensitivity probe (or the cache an earlier flavour left) and the plan search."""
    t = time.perf_counter()
    names = [la.name for la in engine.layers]
    run.probe_key = probecache.probe_key(
        run.model_path, run.calib.paths, method=run.method.value, unit="anchored fidelity drop",
        probe=run.num_probe_images, kept=run.log.kept(), ort=ort.__version__, edgepose=__version__,
    )  # fmt: skip
    run.cached = probecache.load(run.model_path, run.probe_key, names)
    outcome = engine.mixed(
        m8, cache8, run.high_precision, budget=run.budget, max_drop=run.max_drop,
        latency_aware=run.latency_aware, all8=fid_int8, sensitivity=run.cached,
    )  # fmt: skip
    if run.cached is not None:
        run.notes.append(
            f"sensitivity reused from {probecache.cache_path(run.model_path)} (same model, calibration "
            "and optimizations: the probe runs once for every flavour)"
        )
    run.stages.seconds["sensitivity"] = outcome.seconds_probe
    run.stages.seconds["search"] = time.perf_counter() - t - outcome.seconds_probe
    if outcome.search.note:
        run.notes.append("note: " + outcome.search.note)
    return outcome


@dataclass
class _Chosen:
    plan: PrecisionPlan
    prepared: onnx.ModelProto  # the float model the final quantize_static runs on
    cache: Path
    outcome: MixedOutcome | None = None
    fid_int8: Fidelity | None = None


def _choose(run: _Run, engine: Engine) -> _Chosen:
    """The plan and what it is quantized from: int16 as it is; int8 and mixed after the 8-bit stages."""
    if run.precision is Precision.INT16:
        engine.start_probe(run.build(engine.model, PrecisionPlan(LayerPrecision.INT8), engine.cache, "int8"))
        return _Chosen(PrecisionPlan.uniform(run.precision), engine.model, engine.cache)
    with run.stages.stage("optimize", ticks=False):
        m8, cache8, fid_int8 = engine.optimize_int8(run.options, run.log)
    if not run.mixed:
        return _Chosen(PrecisionPlan.uniform(run.precision), m8, cache8, None, fid_int8)
    outcome = _mixed(run, engine, m8, cache8, fid_int8)
    prepared = merge_for_plan(engine.model, m8, outcome.plan, engine.layers)
    return _Chosen(outcome.plan, prepared, cache8, outcome, fid_int8)


@dataclass
class _Measured:
    q: onnx.ModelProto
    fid: Fidelity  # at the float model's detections: the search's unit
    fid_e2e: Fidelity  # end to end, as bench measures it
    raw: float
    probe_images: list[np.ndarray]


def _final(run: _Run, engine: Engine, chosen: _Chosen, original: onnx.ModelProto) -> _Measured:
    """The written model under the chosen plan (with its own bias pass) and how close to float it is."""
    with run.stages.stage("quantize"):
        q = _quantize(chosen.prepared, chosen.plan, chosen.cache, run.method, run.tmp, "final")
        if chosen.plan.high() and any("biascorr" in k for k in run.log.kept()):
            # the plan's own mean errors, one more pass
            q, chosen.prepared = final_bias_pass(
                engine, q, chosen.prepared, chosen.plan, chosen.cache, run.log
            )
    if engine.check is None:
        raise RuntimeError("the fidelity check images were never chosen; this is a bug")
    images = engine.check.images
    body = body_model(original)
    names = [o.name for o in body.graph.output]  # the float tail's inputs, in the reference's order
    raw = nmse(raw_outputs(q, images, run.threads, names), raw_outputs(body, images, run.threads))
    return _Measured(q, engine.measure(q), engine.check.fidelity_end_to_end(q), raw, images)


def _report(
    run: _Run, engine: Engine, chosen: _Chosen, m: _Measured, out: Path, calib_dir: str
) -> QuantReport:
    notes = run.notes + engine.notes
    if run.max_drop is not None and m.fid.drop > run.max_drop:
        notes.append(
            f"note: measured fidelity drop {m.fid.drop:.4f} exceeds --max-drop {run.max_drop:g}; "
            "raise --max-drop or use --bits 16"
        )
    outcome = chosen.outcome
    return QuantReport.build(
        plan=chosen.plan, seconds=run.stages.seconds, model=str(run.model_path), output=str(out),
        precision=run.precision, method=run.method, num_calib=len(run.calib), calib_dir=calib_dir,
        opset=default_opset(m.q), layers=layer_rows(engine.layers, chosen.plan, outcome, run.log),
        high_precision=run.high_precision if run.mixed else None, budget=run.budget if run.mixed else None,
        max_drop=run.max_drop if run.mixed else None, raw_nmse=m.raw, num_probe_images=len(m.probe_images),
        notes=notes, fidelity=m.fid_e2e, fidelity_anchored=m.fid, fidelity_int8=chosen.fid_int8,
        optimizations=run.log.to_dict(), search=describe_trials(outcome.search) if outcome else [],
        predicted_drop=outcome.search.best.predicted if outcome and outcome.search.best else None,
        latency_aware=run.latency_aware if run.mixed else None,
    )  # fmt: skip


def _quant_metadata(
    model: onnx.ModelProto, spec: PoseSpec, plan: PrecisionPlan, report: QuantReport, kept: list[str]
) -> dict[str, str]:
    """Our metadata_props of the quantized file: the float file's with the precision, plan, method (with
    the kept 8-bit optimizations) and the float file's identity (QUANT_SOURCE_KEY: what bench takes ΔAP
    against). Sorted by key: deterministic bytes."""
    quant_method = {
        "method": report.method.value,
        "num_calib": report.num_calib,
        "activations": report.activation_type,
        "weights": report.weight_type + " per-channel symmetric",
        "high_precision": report.high_precision.value if report.high_precision else None,
        "format": QUANT_FORMAT.name,
        "onnxruntime": ort.__version__,
        "optimizations": kept,
    }
    props = {k: v for k, v in metadata(model).items() if k.startswith(METADATA_PREFIX)}
    props.update(spec.replace(precision=report.precision).to_metadata())
    props[QUANT_PLAN_KEY] = json.dumps(plan.high() if report.precision is Precision.MIXED else [])
    props[QUANT_METHOD_KEY] = json.dumps(quant_method, sort_keys=True)
    source = {"sha256": fsio.file_digest(report.model), "file": Path(report.model).name}
    props[QUANT_SOURCE_KEY] = json.dumps(source, sort_keys=True)
    return dict(sorted(props.items()))


def quantize_model(
    model_path: str | os.PathLike[str],
    calib_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    *,
    precision: Precision,
    num_calib: int | None = None,
    budget: float | None = None,
    max_drop: float | None = None,
    high_precision: HighPrecision = HighPrecision.INT16,
    method: CalibMethod = CalibMethod.MINMAX,
    num_probe_images: int = NUM_PROBE_IMAGES,
    threads: int | None = None,
    progress: Progress | None = None,
    options: Options | None = None,
    latency_aware: bool = False,
) -> QuantReport:
    """Quantize a float end-to-end export; writes the model and MODEL.quant.json atomically.

    `budget`: fraction of layers --mixed keeps at high precision (None: defaults.MIXED_BUDGET, read
    now; ignored when `max_drop` is given). `max_drop`: instead, the largest fidelity drop vs float
    (edgepose.quant.fidelity: 1 - mean OKS x score agreement on the probe images) the mixed model may
    have; the fewest layers meeting it win. `options`: the 8-bit optimizations (edgepose.quant.optimize;
    default: each kept if it measures better). `latency_aware`: --mixed prefers layers that cost few
    MACs off the fused int8 kernels. `threads`: onnxruntime intra-op threads (None: its default).
    """
    t0 = time.perf_counter()
    precision = Precision(precision)
    budget = None if max_drop is not None else defaults.MIXED_BUDGET if budget is None else budget
    check_options(precision, budget if precision is Precision.MIXED else None, max_drop)
    model, spec = load_float_model(model_path)
    out = fsio.check_parent(out_path if out_path is not None else default_output(model_path, precision))
    calib = CalibrationSet(calib_dir, spec, num_calib)
    notes = check_calibration(calib)
    with tempfile.TemporaryDirectory(prefix="edgepose-quant-") as tmp_dir:
        run = _Run(Path(model_path), precision, method, high_precision, budget, max_drop, latency_aware,
                   options or Options(), calib, Path(tmp_dir), _Stages(progress), threads, num_probe_images,
                   notes=notes)  # fmt: skip
        engine = _start(run, model, spec)
        chosen = _choose(run, engine)
        measured = _final(run, engine, chosen, model)
    run.stages.seconds["total"] = time.perf_counter() - t0
    report = _report(run, engine, chosen, measured, out, str(calib_dir))
    q = measured.q
    # The quantizer's own metadata_props are not carried: the file keeps the float file's entries.
    del q.metadata_props[:]
    q.metadata_props.extend(model.metadata_props)

    def beside() -> None:
        fsio.write_text(report_path(out), report.to_json())
        if chosen.outcome is not None and run.cached is None:
            names = [la.name for la in engine.layers]
            probecache.save(run.model_path, run.probe_key, names, chosen.outcome.sensitivity)

    finalize(q, _quant_metadata(model, spec, chosen.plan, report, run.log.kept()), out, beside=beside)
    return report
