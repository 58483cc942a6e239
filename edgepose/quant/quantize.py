"""quantize_model: float edgepose export -> 8-bit, 16-bit or sensitivity-driven mixed QDQ model + report.

Stages (onnxruntime.quantization does the quantizing): calibrate the network body ONCE (ranges for
every tensor, cached) -> [mixed: 8-bit model, sensitivity probe, `search.search_mixed_plan`] ->
quantize_static with the plan -> force the tail float -> report -> `onnxkit.finalize` (IR pin,
metadata, onnx.checker, atomic write of the model and its report).

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
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import create_calibrator, quantize_static
from onnxruntime.quantization.calibrate import save_tensors_data

from edgepose import defaults, fsio
from edgepose.errors import ConfigError
from edgepose.onnxkit.graph import default_opset
from edgepose.onnxkit.model import finalize, metadata
from edgepose.quant.calib import CalibrationSet
from edgepose.quant.graph import (
    Layer,
    body_model,
    find_layers,
    float_nodes,
    load_float_model,
    raw_head_outputs,
    upgrade_opset,
)
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
from edgepose.quant.search import MixedSearch, search_mixed_plan
from edgepose.quant.sensitivity import SensitivityProbe, nmse
from edgepose.quant.tailfix import keep_tail_float
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


class _Stages:
    """Times the stages (seconds by stage name) and reports their start and end to `progress`."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress, self.seconds = progress, {}

    @contextlib.contextmanager
    def stage(self, name: str, *, ticks: bool = True) -> Iterator[None]:
        """`ticks=False` for a stage that reports its own progress."""
        if ticks and self.progress:
            self.progress(name, 0, 1)
        t = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - t
        if ticks and self.progress:
            self.progress(name, 1, 1)


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


def _mixed_search(
    body: onnx.ModelProto,
    layers: list[Layer],
    q8: onnx.ModelProto,
    probe_images: list[np.ndarray],
    *,
    high: HighPrecision,
    budget: float | None,
    max_drop: float | None,
    threads: int | None,
    progress: Progress | None,
) -> MixedSearch:
    """--mixed: rank the layers by raw-output sensitivity (8-bit model `q8`) and choose the plan."""
    probe = SensitivityProbe(body, q8, layers, probe_images, threads)
    return search_mixed_plan(
        layers, probe, high=high.layer_precision, budget=budget, max_error=max_drop, progress=progress
    )


def _max_drop_notes(raw: float, max_drop: float | None) -> list[str]:
    if max_drop is None or not raw > max_drop:
        return []
    return [
        f"note: measured raw-output NMSE {raw:.3g} exceeds --max-drop {max_drop:g} "
        "(the search emulates high precision as float); raise --max-drop or use --high-precision float"
    ]


def _quant_metadata(
    model: onnx.ModelProto, spec: PoseSpec, plan: PrecisionPlan, report: QuantReport
) -> dict[str, str]:
    """Our metadata_props of the quantized file: the float file's with the precision, plan, method and the
    float file's identity (QUANT_SOURCE_KEY: what bench takes ΔAP against).

    Sorted by key: deterministic bytes, the same as before the metadata writer was shared.
    """
    mixed = report.precision is Precision.MIXED
    quant_method = {
        "method": report.method.value,
        "num_calib": report.num_calib,
        "activations": report.activation_type,
        "weights": report.weight_type + " per-channel symmetric",
        "high_precision": report.high_precision.value if report.high_precision else None,
        "format": QUANT_FORMAT.name,
        "onnxruntime": ort.__version__,
    }
    props = {k: v for k, v in metadata(model).items() if k.startswith(METADATA_PREFIX)}
    props.update(spec.replace(precision=report.precision).to_metadata())
    props[QUANT_PLAN_KEY] = json.dumps(plan.high() if mixed else [])
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
) -> QuantReport:
    """Quantize a float end-to-end export; writes the model and MODEL.quant.json atomically.

    `budget`: fraction of layers --mixed keeps at high precision (None: defaults.MIXED_BUDGET, read
    now; ignored when `max_drop` is given). `max_drop`: instead, the largest raw-output NMSE vs float
    (see edgepose.quant.sensitivity) the mixed model may have; the fewest most-sensitive layers that
    meet it are promoted. `threads`: onnxruntime intra-op threads of the measurements (None: its
    default).
    """
    t0 = time.perf_counter()
    precision = Precision(precision)
    mixed = precision is Precision.MIXED
    budget = None if max_drop is not None else defaults.MIXED_BUDGET if budget is None else budget
    check_options(precision, budget if mixed else None, max_drop)
    model, spec = load_float_model(model_path)
    out = fsio.check_parent(out_path if out_path is not None else default_output(model_path, precision))
    calib = CalibrationSet(calib_dir, spec, num_calib)
    layers = find_layers(model)
    body = body_model(model)
    probe_images = calib.subset(num_probe_images)
    stages = _Stages(progress)
    search: MixedSearch | None = None
    raw_int8: float | None = None
    with tempfile.TemporaryDirectory(prefix="edgepose-quant-") as tmp_dir:
        tmp = Path(tmp_dir)
        with stages.stage("calibrate"):
            cache = _calibrate(body, calib, method, tmp)
        reference = raw_outputs(body, probe_images, threads)
        names = [o.name for o in body.graph.output]  # the float tail's inputs, in the reference's order
        if mixed:
            with stages.stage("sensitivity", ticks=False):
                q8 = _quantize(model, PrecisionPlan(LayerPrecision.INT8), cache, method, tmp, "int8")
                search = _mixed_search(
                    body, layers, q8, probe_images, high=high_precision, budget=budget,
                    max_drop=max_drop, threads=threads, progress=progress,
                )  # fmt: skip
                raw_int8 = nmse(raw_outputs(q8, probe_images, threads, names), reference)
        plan = search.plan if search is not None else PrecisionPlan.uniform(precision)
        with stages.stage("quantize"):
            q = _quantize(model, plan, cache, method, tmp, "final")
        raw = nmse(raw_outputs(q, probe_images, threads, names), reference)
    stages.seconds["total"] = time.perf_counter() - t0
    report = QuantReport.build(
        model=str(model_path), output=str(out), precision=precision, method=method, num_calib=len(calib),
        calib_dir=str(calib_dir), plan=plan, layers=layers, search=search, opset=default_opset(q),
        high_precision=high_precision if mixed else None, budget=budget if mixed else None,
        max_drop=max_drop if mixed else None, raw_nmse=raw, raw_nmse_int8=raw_int8,
        num_probe_images=len(probe_images), seconds=stages.seconds, notes=_max_drop_notes(raw, max_drop),
    )  # fmt: skip
    # The quantizer's own metadata_props are not carried: the file keeps the float file's entries.
    del q.metadata_props[:]
    q.metadata_props.extend(model.metadata_props)
    finalize(
        q,
        _quant_metadata(model, spec, plan, report),
        out,
        beside=lambda: fsio.write_text(report_path(out), report.to_json()),
    )
    return report
