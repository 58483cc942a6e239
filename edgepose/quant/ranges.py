"""Calibration ranges: read and write onnxruntime's calibration cache, and tighten where a reader saturates.

Why tighten: a min/max range spends 8-bit levels on values no reader can tell apart. The input of a
Sigmoid, or of a SiLU (Sigmoid(x) and x * Sigmoid(x)), is flat below about -5: SiLU(-5) = -0.033 and
Sigmoid(-5) = 0.0067, so every value under -5 gives (almost) the same output. Real first layers reach
-120 there (YOLO11n-pose's second conv: calibrated range [-120, 123], one 8-bit step = 0.95), and
clipping their low side at -SATURATION halves the step at no visible cost. The small mean shift the
clip leaves is what bias correction removes (edgepose.quant.biascorr).

Only the side where every reader saturates is tightened; large positive activations carry the
"person" evidence and are never clipped (clipping them measured worse: see the module docs of
edgepose.quant.quantize). Everything is found from op types, never from layer names.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import onnx
from onnxruntime.quantization.calibrate import (
    CalibrationMethod,
    TensorData,
    TensorsData,
    load_tensors_data,
    save_tensors_data,
)

from edgepose.onnxkit.graph import consumers

# Below -SATURATION a SiLU is within 0.034 of its limit and a Sigmoid within 0.0067 of 0.
# Measured on YOLO11n-pose (64 photos, fidelity on 66 others): -8 -> mean OKS 0.956, -5 -> 0.963.
SATURATION = 5.0

# 16-bit tensors get headroom: at 16 bits one step is 1/65535 of the range, so doubling the range costs
# one bit nobody can see, while a value beyond a min/max range is clipped however many bits there are -
# and photos the calibration did not see go beyond it. YOLO11n-pose, 64 photos calibrating and the other
# 66 evaluated: 237 of 329 activation tensors exceed their calibrated range on some evaluation photo, the
# worst by 64% of its width; int16 with min/max ranges lost 0.43 AP (95% interval -0.92 to -0.06, both
# folds pooled, 130 photos), with 2x headroom 0.00 (-0.04 to +0.02), with 4x -0.11.
HEADROOM_16BIT = 2.0

Ranges = dict[str, tuple[float, float]]


def load_ranges(cache: str | os.PathLike[str]) -> Ranges:
    """tensor -> (low, high) from onnxruntime's calibration cache (per-tensor ranges)."""
    data = load_tensors_data(cache)
    out: Ranges = {}
    for name, td in data.items():
        lo, hi = td.range_value
        out[name] = (float(np.min(lo)), float(np.max(hi)))
    return out


def save_ranges(
    ranges: Ranges, cache: str | os.PathLike[str], like: str | os.PathLike[str] | None = None
) -> None:
    """Write `ranges` as an onnxruntime calibration cache (what quantize_static reads). `like`: the cache
    they were derived from, whose calibration method is kept (quantize_static refuses a cache recorded
    under another method than the one it is called with); without it, min/max."""
    data = {
        k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in sorted(ranges.items())
    }
    method = load_tensors_data(like).calibration_method if like is not None else CalibrationMethod.MinMax
    save_tensors_data(TensorsData(method, data), cache)


def with_headroom(low: float, high: float, factor: float = HEADROOM_16BIT) -> tuple[float, float]:
    """(low, high) stretched away from zero by `factor` on each nonzero side (a Sigmoid's 0 stays)."""
    return (low * factor if low < 0 else low, high * factor if high > 0 else high)


def widened(ranges: Ranges, factor: float = HEADROOM_16BIT, only: set[str] | None = None) -> Ranges:
    """Ranges with_headroom: every one, or those named in `only` (the others as they are)."""
    return {
        name: with_headroom(lo, hi, factor) if only is None or name in only else (lo, hi)
        for name, (lo, hi) in ranges.items()
    }


def _saturating_side(tensor: str, readers: list[onnx.NodeProto]) -> tuple[bool, bool]:
    """(low side saturates, high side saturates) for every reader of `tensor`."""
    if not readers:
        return False, False
    sig_out = {n.output[0] for n in readers if n.op_type == "Sigmoid"}
    low = high = True
    for n in readers:
        if n.op_type == "Sigmoid":
            continue  # flat on both sides
        silu = n.op_type == "Mul" and len(n.input) == 2 and tensor in n.input and bool(sig_out & set(n.input))
        if silu:
            high = False  # x * Sigmoid(x) grows like x above zero
            continue
        return False, False
    return low, high


@dataclass(frozen=True)
class RangeChange:
    tensor: str
    before: tuple[float, float]
    after: tuple[float, float]

    @property
    def step_ratio(self) -> float:
        """How many times finer one 8-bit step became."""
        w0 = self.before[1] - self.before[0]
        w1 = self.after[1] - self.after[0]
        return w0 / w1 if w1 > 0 else math.inf


def tighten(
    ranges: Ranges, graph: onnx.GraphProto, saturation: float = SATURATION
) -> tuple[Ranges, list[RangeChange]]:
    """Ranges with the saturating side of Sigmoid/SiLU inputs clipped to +-`saturation`; and what changed."""
    readers = consumers(graph)
    out = dict(ranges)
    changes: list[RangeChange] = []
    for name in sorted(ranges):
        lo, hi = ranges[name]
        low, high = _saturating_side(name, readers.get(name, []))
        new_lo = max(lo, -saturation) if low else lo
        new_hi = min(hi, saturation) if high else hi
        if (new_lo, new_hi) != (lo, hi) and new_hi > new_lo:
            out[name] = (new_lo, new_hi)
            changes.append(RangeChange(name, (lo, hi), (new_lo, new_hi)))
    return out, changes
