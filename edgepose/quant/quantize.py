"""quantize_model: float edgepose export -> 8-bit, 16-bit or task-aware mixed QDQ model + report.

Stages (onnxruntime.quantization does the quantizing; edgepose.quant.engine holds the measured ones):
[equalize] -> calibrate the network body ONCE (ranges for every tensor, cached) -> 8-bit
optimizations, each kept only if the real quantized model measures closer to float (ranges,
rounding, bias correction) -> [mixed: task-sensitivity probe (or its cache), plan search measured
plan by plan] -> quantize_static with the plan -> tail (and float islands) kept float -> [bias
correction of the final plan] -> fidelity of the written model -> metadata -> atomic write.

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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import create_calibrator, quantize_static
from onnxruntime.quantization.calibrate import save_tensors_data

from edgepose import __version__, fsio
from edgepose.errors import ConfigError
from edgepose.quant import probecache
from edgepose.quant.calib import CalibrationSet
from edgepose.quant.engine import (
    Engine,
    MixedOutcome,
    check_calibration,
    equalized,
    final_bias_pass,
    keep_equalization,
    layer_rows,
    merge_for_plan,
)
from edgepose.quant.fidelity import Fidelity
from edgepose.quant.graph import (
    QUANT_METHOD_KEY,
    QUANT_PLAN_KEY,
    body_model,
    default_opset,
    find_layers,
    float_nodes,
    load_float_model,
    pin_ir_version,
    set_metadata,
    tail_inputs,
    upgrade_opset,
)
from edgepose.quant.islands import island_nodes, keep_float
from edgepose.quant.optimize import OptimizationLog, Options
from edgepose.quant.plan import (
    OPSET_16BIT,
    CalibMethod,
    HighPrecision,
    LayerPrecision,
    PrecisionPlan,
    calibrator_options,
    ort_method,
    quantize_static_args,
)
from edgepose.quant.report import QuantReport
from edgepose.quant.sensitivity import nmse, session_options
from edgepose.quant.tailfix import keep_tail_float
from edgepose.quant.taskplan import describe_trials
from edgepose.spec import INPUT_NAME, Precision

Progress = Callable[[str, int, int], None]  # (stage, done, total)
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
            "e.g. 0.3"
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


def _calibrate(body: onnx.ModelProto, calib: CalibrationSet, method: CalibMethod, tmp: Path) -> Path:
    """Ranges for every body tensor, computed once and saved as onnxruntime's calibration cache."""
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
    """One quantize_static run of `model` under `plan`, ranges from `cache`; the tail forced float."""
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


def fsio_mkdir(path: Path) -> Path:
    """`path`, created (a fresh sub-folder of the run's temporary folder)."""
    path.mkdir(exist_ok=True)
    return path


def raw_outputs(
    model: onnx.ModelProto, images: Sequence[np.ndarray], threads: int | None = None
) -> list[list[np.ndarray]]:
    """The tail's input tensors (raw head outputs) for each image; a body graph's outputs (no tail)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    names = tail_inputs(model) or [o.name for o in model.graph.output]
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names if n not in have
    )
    sess = ort.InferenceSession(
        m.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"]
    )
    return [sess.run(names, {INPUT_NAME: x}) for x in images]


def quantize_model(
    model_path: str | os.PathLike[str],
    calib_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    *,
    precision: Precision,
    num_calib: int | None = None,
    budget: float | None = 0.3,
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

    `budget`: fraction of layers --mixed keeps at high precision (ignored when `max_drop` is given).
    `max_drop`: instead, the largest fidelity drop vs float (edgepose.quant.fidelity: 1 - mean OKS x
    score agreement on the probe images) the mixed model may have; the fewest layers meeting it win.
    `options`: the 8-bit optimizations (edgepose.quant.optimize; default: each kept if it measures
    better). `latency_aware`: --mixed prefers layers that cost few MACs off the fused int8 kernels.
    """
    t0 = time.perf_counter()
    precision = Precision(precision)
    options = options or Options()
    if max_drop is not None:
        budget = None
    check_options(precision, budget if precision is Precision.MIXED else None, max_drop)
    model, spec = load_float_model(model_path)
    out = fsio.check_parent(out_path if out_path is not None else default_output(model_path, precision))
    calib = CalibrationSet(calib_dir, spec, num_calib)
    notes = check_calibration(calib)
    seconds: dict[str, float] = {}
    log = OptimizationLog()

    def tick(stage: str, done: int = 1, total: int = 1) -> None:
        if progress:
            progress(stage, done, total)

    with tempfile.TemporaryDirectory(prefix="edgepose-quant-") as tmp_dir:
        tmp = Path(tmp_dir)
        # --- stages: equalize -> calibrate -> 8-bit optimizations -> [probe + mixed search] -> final
        original = model
        model, pairs = equalized(model, options.equalize if precision is not Precision.INT16 else False)
        tick("calibrate", 0, 1)
        t = time.perf_counter()
        cache = _calibrate(body_model(model), calib, method, tmp)
        seconds["calibrate"] = time.perf_counter() - t
        tick("calibrate", 1, 1)

        def build(m: onnx.ModelProto, plan: PrecisionPlan, c: Path, tag: str) -> onnx.ModelProto:
            return _quantize(m, plan, c, method, tmp, tag)

        engine = Engine(model, spec, calib, cache, tmp, build, threads, num_probe_images, tick)
        if pairs:
            engine = keep_equalization(
                original,
                engine,
                pairs,
                method,
                log,
                lambda m: _calibrate(body_model(m), calib, method, fsio_mkdir(tmp / "plain")),
                options.equalize,
            )
            model, cache = engine.model, engine.cache
        layers = engine.layers
        outcome: MixedOutcome | None = None
        fid_int8: Fidelity | None = None
        cached: list[float] | None = None  # task sensitivities from an earlier flavour's run
        key, names = "", [la.name for la in layers]
        if precision is Precision.INT16:
            plan = PrecisionPlan.uniform(precision)
            engine.start_probe(build(model, PrecisionPlan(LayerPrecision.INT8), cache, "int8"))
            prepared, final_cache = model, cache
        else:
            t = time.perf_counter()
            m8, cache8, fid_int8 = engine.optimize_int8(options, log)
            seconds["optimize"] = time.perf_counter() - t
            if precision is Precision.MIXED:
                t = time.perf_counter()
                key = probecache.probe_key(
                    model_path,
                    calib.paths,
                    method=method.value,
                    unit="anchored fidelity drop",
                    probe=num_probe_images,
                    kept=log.kept(),
                    ort=ort.__version__,
                    edgepose=__version__,
                )
                cached = probecache.load(model_path, key, names)
                outcome = engine.mixed(
                    m8,
                    cache8,
                    high_precision,
                    budget=budget,
                    max_drop=max_drop,
                    latency_aware=latency_aware,
                    all8=fid_int8,
                    sensitivity=cached,
                )
                if cached is not None:
                    notes.append(
                        f"sensitivity reused from {probecache.cache_path(model_path)} (same model, "
                        "calibration and optimizations: the probe runs once for every flavour)"
                    )
                seconds["sensitivity"] = outcome.seconds_probe
                seconds["search"] = time.perf_counter() - t - outcome.seconds_probe
                plan = outcome.plan
                if outcome.search.note:
                    notes.append("note: " + outcome.search.note)
            else:
                plan = PrecisionPlan.uniform(precision)
            prepared, final_cache = merge_for_plan(model, m8, plan, layers), cache8
        tick("quantize", 0, 1)
        t = time.perf_counter()
        q = _quantize(prepared, plan, final_cache, method, tmp, "final")
        if plan.high() and any(
            "biascorr" in k for k in log.kept()
        ):  # the plan's own mean errors, one more pass
            q, prepared = final_bias_pass(engine, q, prepared, plan, final_cache, log)
        seconds["quantize"] = time.perf_counter() - t
        fid = engine.measure(q)  # at the float model's detections: the search's unit
        assert engine.check is not None
        fid_e2e = engine.check.fidelity_end_to_end(q)  # as bench measures it
        probe_images = engine.check.images if engine.check else []
        raw = nmse(
            raw_outputs(q, probe_images, threads), raw_outputs(body_model(original), probe_images, threads)
        )
        tick("quantize", 1, 1)
    notes += engine.notes
    if max_drop is not None and fid.drop > max_drop:
        notes.append(
            f"note: measured fidelity drop {fid.drop:.4f} exceeds --max-drop {max_drop:g}; "
            "raise --max-drop or use --bits 16"
        )

    act = "QUInt16" if plan.default is LayerPrecision.INT16 else "QUInt8"
    wt = "QInt16" if plan.default is LayerPrecision.INT16 else "QInt8"
    rows = layer_rows(layers, plan, outcome, log)
    quant_method = {
        "method": method.value,
        "num_calib": len(calib),
        "activations": act,
        "weights": wt + " per-channel symmetric",
        "high_precision": high_precision.value if precision is Precision.MIXED else None,
        "format": "QDQ",
        "onnxruntime": ort.__version__,
        "optimizations": log.kept(),
    }
    props = {m.key: m.value for m in model.metadata_props}
    props.update(spec.replace(precision=precision).to_metadata())
    props[QUANT_PLAN_KEY] = json.dumps(plan.high() if precision is Precision.MIXED else [])
    props[QUANT_METHOD_KEY] = json.dumps(quant_method, sort_keys=True)
    set_metadata(q, props)
    pin_ir_version(q)
    seconds["total"] = time.perf_counter() - t0
    report = QuantReport(
        model=str(model_path),
        output=str(out),
        precision=precision,
        method=method,
        num_calib=len(calib),
        calib_dir=str(calib_dir),
        activation_type=act,
        weight_type=wt,
        opset=default_opset(q),
        layers=rows,
        high_precision=high_precision if precision is Precision.MIXED else None,
        budget=budget if precision is Precision.MIXED else None,
        max_drop=max_drop if precision is Precision.MIXED else None,
        raw_nmse=raw,
        num_probe_images=len(probe_images),
        seconds={k: round(v, 2) for k, v in seconds.items()},
        notes=notes,
        fidelity=fid_e2e,
        fidelity_anchored=fid,
        fidelity_int8=fid_int8,
        optimizations=log.to_dict(),
        search=describe_trials(outcome.search) if outcome else [],
        predicted_drop=outcome.search.best.predicted if outcome and outcome.search.best else None,
        latency_aware=latency_aware if precision is Precision.MIXED else None,
    )
    with fsio.atomic_path(out) as tmp_model:
        onnx.save(q, str(tmp_model))
        # Inside the model's context: a report that cannot be written (disk full, Ctrl-C) takes the
        # model's temp file with it, so a model never appears without its report.
        fsio.write_text(report_path(out), report.to_json())
        if outcome is not None and cached is None:
            probecache.save(model_path, key, names, outcome.sensitivity)
    return report
