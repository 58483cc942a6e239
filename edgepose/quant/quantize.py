"""quantize_model: float edgepose export -> 8-bit, 16-bit or sensitivity-driven mixed QDQ model + report.

Stages (onnxruntime.quantization does the quantizing): calibrate the network body ONCE (ranges for
every tensor, cached) -> [mixed: 8-bit model, sensitivity probe, plan] -> quantize_static with the
plan -> force the tail float -> metadata -> atomic write.

onnxruntime's `quant_pre_process` is deliberately not run: `edgepose export` already simplified the
graph (onnxslim: BatchNorm folded, constants folded, shapes inferred) and quantize_static runs its own
shape inference, while the pre-processor's graph optimizer may fuse or rename nodes (the tail's
TAIL_PREFIX names, the plan's layer names) and does not promise to keep metadata_props.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
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

from edgepose import fsio
from edgepose.errors import ConfigError
from edgepose.quant.calib import CalibrationSet
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
from edgepose.quant.report import LayerRow, QuantReport
from edgepose.quant.sensitivity import SensitivityProbe, nmse, order_by_sensitivity, session_options
from edgepose.quant.tailfix import keep_tail_float
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
    if max_drop is not None and not (max_drop > 0.0 and math.isfinite(max_drop)):
        raise ConfigError(f"--max-drop {max_drop} must be a positive number (raw-output NMSE), e.g. 0.01")


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
    return q


def raw_outputs(
    model: onnx.ModelProto,
    images: Sequence[np.ndarray],
    threads: int | None = None,
    names: Sequence[str] | None = None,
) -> list[list[np.ndarray]]:
    """The tail's input tensors (raw head outputs) for each image; a body graph's outputs (no tail).

    `names` fixes which tensors, in which order: a quantized copy may list its tail's inputs in another
    graph order than the float model (ER-Pose's TopK tail does), and `nmse` pairs outputs by position.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    names = list(names or tail_inputs(model) or [o.name for o in model.graph.output])
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
) -> QuantReport:
    """Quantize a float end-to-end export; writes the model and MODEL.quant.json atomically.

    `budget`: fraction of layers --mixed keeps at high precision (ignored when `max_drop` is given).
    `max_drop`: instead, the largest raw-output NMSE vs float (see edgepose.quant.sensitivity) the
    mixed model may have; the fewest most-sensitive layers that meet it are promoted.
    """
    t0 = time.perf_counter()
    precision = Precision(precision)
    if max_drop is not None:
        budget = None
    check_options(precision, budget if precision is Precision.MIXED else None, max_drop)
    model, spec = load_float_model(model_path)
    out = fsio.check_parent(out_path if out_path is not None else default_output(model_path, precision))
    calib = CalibrationSet(calib_dir, spec, num_calib)
    layers = find_layers(model)
    body = body_model(model)
    probe_images = calib.subset(num_probe_images)
    seconds: dict[str, float] = {}
    notes: list[str] = []

    def tick(stage: str, done: int = 1, total: int = 1) -> None:
        if progress:
            progress(stage, done, total)

    with tempfile.TemporaryDirectory(prefix="edgepose-quant-") as tmp_dir:
        tmp = Path(tmp_dir)
        tick("calibrate", 0, 1)
        t = time.perf_counter()
        cache = _calibrate(body, calib, method, tmp)
        seconds["calibrate"] = time.perf_counter() - t
        tick("calibrate", 1, 1)

        scores: list[float] | None = None
        raw_int8: float | None = None
        reference = raw_outputs(body, probe_images, threads)
        names = [o.name for o in body.graph.output]  # the float tail's inputs, in the reference's order
        if precision is Precision.MIXED:
            t = time.perf_counter()
            q8 = _quantize(model, PrecisionPlan(LayerPrecision.INT8), cache, method, tmp, "int8")
            probe = SensitivityProbe(body, q8, layers, probe_images, threads)
            scores = probe.rank(lambda d, n: tick("sensitivity", d, n))
            order = order_by_sensitivity(scores)
            k = _num_high(order, probe, len(layers), budget, max_drop)
            plan = PrecisionPlan(
                LayerPrecision.INT8,
                {layers[i].name: high_precision.layer_precision for i in sorted(order[:k])},
            )
            raw_int8 = nmse(raw_outputs(q8, probe_images, threads, names), reference)
            seconds["sensitivity"] = time.perf_counter() - t
        else:
            plan = PrecisionPlan.uniform(precision)
        tick("quantize", 0, 1)
        t = time.perf_counter()
        q = _quantize(model, plan, cache, method, tmp, "final")
        seconds["quantize"] = time.perf_counter() - t
        raw = nmse(raw_outputs(q, probe_images, threads, names), reference)
        tick("quantize", 1, 1)
    if max_drop is not None and raw > max_drop:
        notes.append(
            f"note: measured raw-output NMSE {raw:.3g} exceeds --max-drop {max_drop:g} "
            "(the search emulates high precision as float); raise --max-drop or use --high-precision float"
        )

    act = "QUInt16" if plan.default is LayerPrecision.INT16 else "QUInt8"
    wt = "QInt16" if plan.default is LayerPrecision.INT16 else "QInt8"
    rank = {i: r + 1 for r, i in enumerate(order_by_sensitivity(scores))} if scores else {}
    rows = [
        LayerRow(la.name, la.op, plan.of(la.name), scores[i] if scores else None, rank.get(i))
        for i, la in enumerate(layers)
    ]
    quant_method = {
        "method": method.value,
        "num_calib": len(calib),
        "activations": act,
        "weights": wt + " per-channel symmetric",
        "high_precision": high_precision.value if precision is Precision.MIXED else None,
        "format": "QDQ",
        "onnxruntime": ort.__version__,
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
        raw_nmse_int8=raw_int8,
        num_probe_images=len(probe_images),
        seconds={k: round(v, 2) for k, v in seconds.items()},
        notes=notes,
    )
    with fsio.atomic_path(out) as tmp_model:
        onnx.save(q, str(tmp_model))
        # Inside the model's context: a report that cannot be written (disk full, Ctrl-C) takes the
        # model's temp file with it, so a model never appears without its report.
        fsio.write_text(report_path(out), report.to_json())
    return report


def _num_high(
    order: list[int], probe: SensitivityProbe, n: int, budget: float | None, max_drop: float | None
) -> int:
    """How many of the most sensitive layers to promote: by budget, or the fewest meeting max_drop."""
    if max_drop is None:
        return max(1, math.floor((budget or 0.3) * n + 1e-9)) if n else 0
    lo, hi = 0, n  # error(k) = probe error with the top-k promoted; assumed non-increasing in k
    while lo < hi:
        mid = (lo + hi) // 2
        if probe.error(order[mid:]) <= max_drop:
            hi = mid
        else:
            lo = mid + 1
    return lo
