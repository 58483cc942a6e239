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
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgepose import __version__, defaults, fsio
from edgepose.onnxkit.graph import default_opset
from edgepose.onnxkit.model import finalize
from edgepose.quant import probecache
from edgepose.quant.calib import CalibrationSet, check_calibration
from edgepose.quant.engine import (
    Engine,
    MixedOutcome,
    equalized,
    final_bias_pass,
    keep_equalization,
)
from edgepose.quant.fidelity import Fidelity, nmse
from edgepose.quant.graph import (
    body_model,
    load_float_model,
)
from edgepose.quant.optimize import OptimizationLog, Options
from edgepose.quant.options import (
    CalibMethod,
    HighPrecision,
    Progress,
    check_options,
    default_output,
    report_path,
)
from edgepose.quant.ortsteps import calibrate, quantize_with, raw_outputs
from edgepose.quant.plan import (
    PrecisionPlan,
    merge_for_plan,
)
from edgepose.quant.report import QuantReport, layer_rows, quant_metadata
from edgepose.quant.taskplan import describe_trials
from edgepose.spec import (
    PoseSpec,
    Precision,
)

NUM_PROBE_IMAGES = 8


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
    seed: int = 0  # the fitted rounding's patch sample

    @property
    def mixed(self) -> bool:
        return self.precision is Precision.MIXED

    def build(self, m: onnx.ModelProto, plan: PrecisionPlan, cache: Path, tag: str) -> onnx.ModelProto:
        return quantize_with(m, plan, cache, self.method, self.tmp, tag)


def _start(run: _Run, model: onnx.ModelProto, spec: PoseSpec) -> Engine:
    """Equalize (when it measures better) and calibrate: the engine every later stage measures with."""
    original = model
    eq, pairs = equalized(model, run.options.equalize if run.precision is not Precision.INT16 else False)
    with run.stages.stage("calibrate"):
        cache = calibrate(body_model(eq), run.calib, run.method, run.tmp)
    engine = Engine(eq, spec, run.calib, cache, run.tmp, run.build, num_probe_images=run.num_probe_images,
                    threads=run.threads, tick=run.stages.tick, seed=run.seed)  # fmt: skip
    if pairs:

        def plain(m: onnx.ModelProto) -> Path:
            return calibrate(body_model(m), run.calib, run.method, run.tmp / "plain")

        engine = keep_equalization(original, engine, pairs, run.log, plain, run.options.equalize)
    return engine


def _mixed(run: _Run, engine: Engine, m8: onnx.ModelProto, cache8: Path, fid_int8: Fidelity) -> MixedOutcome:
    """--mixed: the task-sensitivity probe (or the cache an earlier flavour left) and the plan search."""
    t = time.perf_counter()
    names = [la.name for la in engine.layers]
    run.probe_key = probecache.probe_key(
        run.model_path, run.calib.paths, method=run.method.value, unit="anchored fidelity drop",
        probe=run.num_probe_images, kept=run.log.kept(), seed=run.seed, ort=ort.__version__,
        edgepose=__version__,
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
        engine.pick_images()
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
    reused: bool  # the written model is one an earlier stage built and measured (no final pass kept)


def _final(run: _Run, engine: Engine, chosen: _Chosen, original: onnx.ModelProto) -> _Measured:
    """The written model under the chosen plan (with its own bias pass) and how close to float it is."""
    with run.stages.stage("quantize"):
        reused = engine.has_built(chosen.prepared, chosen.plan, chosen.cache)  # int8, mixed: yes
        q = first = engine.build(chosen.prepared, chosen.plan, chosen.cache)
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
    return _Measured(
        q, engine.measure(q), engine.check.fidelity_end_to_end(q), raw, images, reused and q is first
    )


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
        latency_aware=run.latency_aware if run.mixed else None, quantize_reused=m.reused, seed=run.seed,
    )  # fmt: skip


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
    seed: int = 0,
) -> QuantReport:
    """Quantize a float end-to-end export; writes the model and MODEL.quant.json atomically.

    `budget`: fraction of layers --mixed keeps at high precision (None: defaults.MIXED_BUDGET, read
    now; ignored when `max_drop` is given). `max_drop`: instead, the largest fidelity drop vs float
    (edgepose.quant.fidelity: 1 - mean OKS x score agreement on the probe images) the mixed model may
    have; the fewest layers meeting it win. `options`: the 8-bit optimizations (edgepose.quant.optimize;
    default: each kept if it measures better). `latency_aware`: --mixed prefers layers that cost few
    MACs off the fused int8 kernels. `threads`: onnxruntime intra-op threads (None: its default).
    `seed`: the fitted rounding's sample of calibration patches (the only random choice: the same seed
    gives the same bytes; other seeds show how much one run's sample moves the result).
    """
    t0 = time.perf_counter()
    precision = Precision(precision)
    budget = None if max_drop is not None else defaults.MIXED_BUDGET if budget is None else budget
    check_options(precision, budget if precision is Precision.MIXED else None, max_drop, seed)
    model, spec = load_float_model(model_path)
    out = fsio.check_parent(out_path if out_path is not None else default_output(model_path, precision))
    calib = CalibrationSet(calib_dir, spec, num_calib)
    notes = check_calibration(calib)
    with tempfile.TemporaryDirectory(prefix="edgepose-quant-") as tmp_dir:
        run = _Run(Path(model_path), precision, method, high_precision, budget, max_drop, latency_aware,
                   options or Options(), calib, Path(tmp_dir), _Stages(progress), threads, num_probe_images,
                   notes=notes, seed=seed)  # fmt: skip
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

    finalize(q, quant_metadata(model, spec, chosen.plan, report, run.log.kept()), out, beside=beside)
    return report
