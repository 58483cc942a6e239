"""The precision plan {layer -> precision} and its mapping onto onnxruntime.quantization arguments.

This is the ONLY module that spells onnxruntime.quantization option keys (extra_options,
TensorQuantOverrides, calibrator options) and picks its QuantType per precision (the report reads the
type names from here too): a typo here is caught by the tests, not silently ignored.

Meaning of a layer's precision: the precision of the data its multiply-accumulate reads, i.e. its
activation inputs and its weights (per-channel, symmetric).
- INT8: uint8 asymmetric activations, int8 per-channel weights.
  Why uint8 activations: onnxruntime's CPU EP fuses DQ(u8)->Conv(s8 weights)->Q(u8) into its
  u8s8 QLinearConv/MLAS kernels (the best-tuned integer path on x86 VNNI/AVX2 and ARM NEON), and only
  asymmetric activations let the quantizer fold ReLU into the Q range (zero-point 0) instead of running it.
  Measured on edgepose-n at 256 px, 1 thread (x86 with AVX512-VNNI): u8 activations 38 ms vs int8
  (s8s8) activations 68 ms vs float 44 ms (medians, interleaved runs).
- INT16: uint16 activations, int16 per-channel weights. We emit STANDARD opset-21
  QuantizeLinear/DequantizeLinear (16-bit types are native there) rather than the com.microsoft
  contrib Q/DQ: onnxruntime >= 1.18 and vendor importers read opset 21, contrib ops are ORT-only, and
  quantize_static upgrades the opset anyway when it sees 16-bit types. A tensor read by a 16-bit layer
  is produced at 16 bits, and so is every tensor feeding it through non-layer ops (Concat, ReLU,
  MaxPool, Add, ...), with a 16->8 conversion for the 8-bit layers that also read them.
- FLOAT: a float island (edgepose.quant.islands): the layer and the non-layer ops that produce what it
  reads are excluded from quantization, so its weights, arithmetic and inputs are float; the layers
  writing those inputs write float. islands.keep_float keeps onnxruntime from quantizing it back.
The decode/NMS tail and the non-layer ops between the last layers and it (graph.float_nodes) are
always excluded, and stay float (tailfix.keep_tail_float).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

from edgepose.onnxkit.graph import consumers
from edgepose.quant.graph import Layer, chain_tensors
from edgepose.quant.islands import island_nodes
from edgepose.quant.options import CalibMethod, LayerPrecision
from edgepose.spec import Precision

OPSET_16BIT = 21  # first ONNX opset whose QuantizeLinear/DequantizeLinear take (u)int16
QUANT_FORMAT = QuantFormat.QDQ  # Q/DQ pairs around float ops: what every edgepose quantization writes


def ort_method(method: CalibMethod) -> CalibrationMethod:
    return {
        CalibMethod.MINMAX: CalibrationMethod.MinMax,
        CalibMethod.PERCENTILE: CalibrationMethod.Percentile,
        CalibMethod.ENTROPY: CalibrationMethod.Entropy,
    }[method]


_ACT = {LayerPrecision.INT8: QuantType.QUInt8, LayerPrecision.INT16: QuantType.QUInt16}
_WEIGHT = {LayerPrecision.INT8: QuantType.QInt8, LayerPrecision.INT16: QuantType.QInt16}


def activation_type_name(precision: LayerPrecision) -> str:
    """onnxruntime's name of the activation type at `precision` (INT8 or INT16), e.g. "QUInt8"."""
    return _ACT[precision].name


def weight_type_name(precision: LayerPrecision) -> str:
    """onnxruntime's name of the weight type at `precision` (INT8 or INT16), e.g. "QInt8"."""
    return _WEIGHT[precision].name


@dataclass
class PrecisionPlan:
    """Every layer's precision; layers not in `layers` (and non-layer ops) get `default`."""

    default: LayerPrecision
    layers: dict[str, LayerPrecision] = field(default_factory=dict)

    @classmethod
    def uniform(cls, precision: Precision) -> PrecisionPlan:
        return cls(LayerPrecision.INT16 if precision is Precision.INT16 else LayerPrecision.INT8)

    def of(self, name: str) -> LayerPrecision:
        return self.layers.get(name, self.default)

    def high(self) -> list[str]:
        """Layers above the default precision, in insertion (graph) order."""
        return [n for n, p in self.layers.items() if p is not self.default]

    @property
    def uses_16bit(self) -> bool:
        return self.default is LayerPrecision.INT16 or LayerPrecision.INT16 in self.layers.values()


def calibrator_options(method: CalibMethod) -> dict[str, Any]:
    """create_calibrator extra_options (the percentile to keep).

    Not "max_intermediate_outputs": onnxruntime 1.31's MinMaxCalibrater drops the collected batch
    without merging its ranges when that limit is hit; ortsteps.calibrate feeds the calibrator in chunks
    instead.
    """
    if method is CalibMethod.PERCENTILE:
        return {"percentile": 99.999}
    return {}


def _high16(plan: PrecisionPlan, layers: list[Layer]) -> list[Layer]:
    return [la for la in layers if plan.of(la.name) is LayerPrecision.INT16]


def sixteen_bit_tensors(
    plan: PrecisionPlan, layers: list[Layer], graph: onnx.GraphProto, tail: set[str]
) -> set[str] | None:
    """The activation tensors `plan` quantizes at 16 bits: None when every tensor is (an all-16-bit plan),
    else what its 16-bit layers read, back to the layers producing it (graph.chain_tensors)."""
    if plan.default is LayerPrecision.INT16:
        return None
    return set(chain_tensors(_high16(plan, layers), graph, tail))


def quantize_static_args(
    plan: PrecisionPlan,
    layers: list[Layer],
    graph: onnx.GraphProto,
    tail: list[str],
    ranges: dict[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for onnxruntime.quantization.quantize_static (all but model/output/reader).

    `graph` is the graph being quantized; `tail` lists its tail's node names (always excluded).
    `ranges` (the calibrated ones, before headroom): the 8-bit copy a mixed plan converts a 16-bit tensor
    to for its 8-bit readers gets them as rmin/rmax. The 16-bit tensors' own headroom is in the cache
    quantize_static reads (ortsteps.quantize_with), not here: overrides would bypass onnxruntime's range
    adjustments (a Softmax output -> [0, 1], a ReLU/Clip input -> its output's range, so Conv -> ReLU fuses).
    Those adjustments do not reach the 8-bit copy: a Softmax output read at 8 bits keeps its calibrated
    range (inside [0, 1]); a ReLU input has no 8-bit reader to convert for.
    """
    by_name = {la.name: la for la in layers}
    floats = [by_name[n] for n in by_name if plan.of(n) is LayerPrecision.FLOAT]
    tail_set = set(tail)
    exclude = list(tail) + [n for n in island_nodes(floats, graph, tail_set) if n not in tail_set]
    overrides: dict[str, list[dict[str, Any]]] = {}
    if plan.default is LayerPrecision.INT8:
        high16 = _high16(plan, layers)
        for la in high16:
            overrides[la.weight] = [{"quant_type": QuantType.QInt16, "axis": la.axis}]
        readers = consumers(graph)
        for t in chain_tensors(high16, graph, tail_set):
            eight_bit = sorted(
                n.name
                for n in readers.get(t, [])
                if n.name in by_name and plan.of(n.name) is LayerPrecision.INT8
            )
            entry: dict[str, Any] = {"quant_type": QuantType.QUInt16}
            if eight_bit:
                entry["convert"] = {"quant_type": QuantType.QUInt8, "recv_nodes": set(eight_bit)}
                if ranges is not None and t in ranges:  # the cache holds this tensor's 16-bit range
                    entry["convert"]["rmin"], entry["convert"]["rmax"] = (np.float32(v) for v in ranges[t])
            overrides[t] = [entry]
    extra: dict[str, Any] = {
        "ActivationSymmetric": False,
        "WeightSymmetric": True,
        "TensorQuantOverrides": overrides,
    }
    return {
        "quant_format": QUANT_FORMAT,
        "per_channel": True,
        "reduce_range": False,
        "activation_type": _ACT[plan.default],
        "weight_type": _WEIGHT[plan.default],
        "nodes_to_exclude": exclude,
        "extra_options": extra,
    }


def merge_for_plan(
    original: onnx.ModelProto, prepared: onnx.ModelProto, plan: PrecisionPlan, layers: Sequence[Layer]
) -> onnx.ModelProto:
    """`prepared` (fitted for 8 bits) with the original weights and bias on the high-precision layers."""
    high = set(plan.high())
    if not high:
        return prepared
    m = onnx.ModelProto()
    m.CopyFrom(prepared)
    onodes = {n.name: n for n in original.graph.node}
    oinits = {t.name: t for t in original.graph.initializer}
    nodes = {n.name: n for n in m.graph.node}
    for la in layers:
        if la.name not in high or la.name not in onodes:
            continue
        node, onode = nodes[la.name], onodes[la.name]
        for j in range(1, len(onode.input)):
            src = oinits.get(onode.input[j])
            if src is None:
                continue
            t = numpy_helper.from_array(numpy_helper.to_array(src), f"{la.name}/ep_orig/in{j}")
            m.graph.initializer.append(t)
            while len(node.input) <= j:
                node.input.append("")
            node.input[j] = t.name
        del node.input[len(onode.input) :]  # a bias added by bias correction: the original had none
    return m
