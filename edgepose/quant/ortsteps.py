"""The onnxruntime calls of quantization, one function each: calibrate, quantize under a plan, raw outputs.

`quantize_model` (quantize.py) and the measured stages (engine.py) compose these; tests call them
directly on tiny graphs.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import create_calibrator, quantize_static
from onnxruntime.quantization.calibrate import save_tensors_data

from edgepose.onnxkit.graph import with_outputs
from edgepose.quant import ranges
from edgepose.quant.calib import CalibrationSet
from edgepose.quant.graph import find_layers, float_nodes, raw_head_outputs, upgrade_opset
from edgepose.quant.islands import island_nodes, keep_float
from edgepose.quant.options import CalibMethod, LayerPrecision
from edgepose.quant.plan import (
    OPSET_16BIT,
    PrecisionPlan,
    calibrator_options,
    ort_method,
    quantize_static_args,
    sixteen_bit_tensors,
)
from edgepose.quant.tailfix import keep_tail_float
from edgepose.runtime.session import cpu_session
from edgepose.spec import INPUT_NAME

CALIB_CHUNK = 8  # images per calibrator pass: every tensor of every image is held until the pass ends


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """onnxruntime.quantization logs advice ("consider pre-processing") through the root logger, and its
    histogram calibrators (percentile, entropy) print progress to stdout: library functions print nothing."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def calibrate(body: onnx.ModelProto, calib: CalibrationSet, method: CalibMethod, tmp: Path) -> Path:
    """Ranges for every body tensor, computed once and saved as onnxruntime's calibration cache."""
    tmp.mkdir(exist_ok=True)
    body_path = tmp / "body.onnx"
    onnx.save(body, str(body_path))
    with quiet():
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


def quantize_with(
    model: onnx.ModelProto, plan: PrecisionPlan, cache: Path, method: CalibMethod, tmp: Path, tag: str
) -> onnx.ModelProto:
    """One quantize_static run of `model` under `plan`, ranges from `cache`; the tail and the plan's
    float layers (islands) forced float."""
    prepared = upgrade_opset(model, OPSET_16BIT) if plan.uses_16bit else model
    layers = find_layers(prepared)
    fixed = float_nodes(prepared)  # quantize_static works on a copy: `prepared` stays as it is
    tail = [n.name for n in fixed if n.name]
    calibrated = ranges.load_ranges(cache) if plan.uses_16bit else None
    if calibrated is not None:  # 16-bit tensors get headroom in the cache: onnxruntime adjusts from there
        wide = tmp / f"{tag}-ranges-16bit.json"
        only = sixteen_bit_tensors(plan, layers, prepared.graph, set(tail))
        ranges.save_ranges(ranges.widened(calibrated, only=only), wide, like=cache)
        cache = wide
    args = quantize_static_args(plan, layers, prepared.graph, tail, calibrated)
    out = tmp / f"{tag}.onnx"
    with quiet():
        quantize_static(
            prepared, out, None, calibrate_method=ort_method(method), calibration_cache_path=cache, **args
        )
    q = onnx.load(str(out))
    keep_tail_float(q, prepared)
    floats = [la for la in layers if plan.of(la.name) is LayerPrecision.FLOAT]
    if floats:
        tail = {n.name for n in fixed}
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
    names = list(names or raw_head_outputs(model) or [o.name for o in model.graph.output])
    sess = cpu_session(with_outputs(model, names).SerializeToString(), threads)
    return [sess.run(names, {INPUT_NAME: x}) for x in images]
