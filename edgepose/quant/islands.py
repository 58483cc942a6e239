"""Float islands that stay float when onnxruntime runs them (the CPU flavour of --mixed).

A float island is a set of layers kept in float inside an 8-bit model, with the tensors they read
(walked upstream through non-layer ops to the producing layers, as a 16-bit plan promotes them):
those tensors are not quantized at all, so an island removes the 8-bit error of its inputs too, not
only of its weights. Decision and its price: the island's inputs stay float because on YOLO11n-pose
the 8-bit rounding of what a layer reads costs more than its own weights (reading 8-bit tensors, a
float island removed 22% of the raw-output error; a 16-bit island 94%). The producing layers then
write float, so they run as dequantize + float kernels; `--latency-aware` counts that cost.

Two things onnxruntime would otherwise undo:
1. quantize_static rewires every reader of a quantized tensor to its DequantizeLinear, the excluded
   ones too: `keep_float` rewires the island's nodes back to the float tensors (as tailfix does for
   the decode tail);
2. at session load onnxruntime >= 1.21's `WeightBiasQuantization` turns a float Conv/Gemm that reads
   a per-tensor DequantizeLinear and writes into a QuantizeLinear back into a per-tensor int8 kernel.
   An island that still reads a DQ output (an input shared with an 8-bit reader) gets its own
   DequantizeLinear with a per-channel scale (the same value repeated), which that optimizer does
   not match; the numbers are identical. No session option is needed, so the file runs float
   islands float in any onnxruntime, not only through edgepose's runtime.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgepose.onnxkit.graph import producers
from edgepose.onnxkit.ops import QDQ_OPS
from edgepose.quant.graph import LAYER_OPS, Layer, chain_tensors
from edgepose.quant.tailfix import _drop_dead_qdq, _float_source

GUARD = "ep_island/"


def island_nodes(layers: Iterable[Layer], graph: onnx.GraphProto, tail: set[str]) -> list[str]:
    """Names of the nodes that must stay float for these float layers: the layers and the non-layer
    nodes that produce the tensors they read (up to the producing layers, which stay quantized)."""
    layers = list(layers)
    prod = producers(graph)
    names = [la.name for la in layers]
    for t in chain_tensors(layers, graph, tail):
        p = prod.get(t)
        if p is not None and p.op_type not in LAYER_OPS and p.name and p.name not in tail:
            names.append(p.name)
    return sorted(set(names))


def keep_float(q: onnx.ModelProto, names: set[str]) -> None:
    """Rewire the named nodes of quantized `q` to read float tensors; guard what still reads a DQ."""
    g = q.graph
    prod = producers(g)
    inits = {i.name for i in g.initializer}
    for node in g.node:
        if node.name not in names:
            continue
        for j, t in enumerate(node.input):
            p = prod.get(t)
            if p is not None and p.op_type in QDQ_OPS and p.input[0] not in inits:
                src = _float_source(prod, t)
                if prod.get(src) is None or prod[src].op_type not in QDQ_OPS:
                    node.input[j] = src
    _drop_dead_qdq(g)
    guard_weight_requantization(q, names)


def guard_weight_requantization(q: onnx.ModelProto, names: set[str]) -> int:
    """Give each named float Conv/Gemm that reads a per-tensor DQ its own per-channel DQ; returns how many."""
    g = q.graph
    prod = producers(g)
    inits = {t.name: t for t in g.initializer}
    order = list(g.node)
    added = 0
    for node in list(g.node):
        if (
            node.name not in names
            or node.op_type not in ("Conv", "ConvTranspose", "Gemm")
            or len(node.input) < 2
        ):
            continue
        dq = prod.get(node.input[0])
        w = inits.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or w is None or dq.input[1] not in inits:
            continue
        scale = numpy_helper.to_array(inits[dq.input[1]])
        if scale.size != 1:
            continue
        zp = numpy_helper.to_array(inits[dq.input[2]]) if len(dq.input) > 2 and dq.input[2] in inits else None
        channels = _input_channels(node, w)
        if channels < 2:
            continue  # one channel: a per-channel scale would still be a scalar
        tag = f"{GUARD}{node.name}"
        s = numpy_helper.from_array(np.full(channels, scale.reshape(()), scale.dtype), f"{tag}/scale")
        z_arr = np.zeros(channels, np.uint8) if zp is None else np.full(channels, zp.reshape(()), zp.dtype)
        z = numpy_helper.from_array(z_arr, f"{tag}/zp")
        g.initializer.extend([s, z])
        guard = helper.make_node(
            "DequantizeLinear", [dq.input[0], s.name, z.name], [f"{tag}/dq"], name=f"{tag}/DQ", axis=1
        )
        order.insert(order.index(node), guard)
        node.input[0] = guard.output[0]
        added += 1
    if added:
        del g.node[:]
        g.node.extend(order)
        _drop_dead_qdq(g)
    return added


def _input_channels(node: onnx.NodeProto, w: onnx.TensorProto) -> int:
    """Size of axis 1 of the layer's activation input (Conv: C_in = weight dim 1 x group)."""
    dims = list(w.dims)
    if node.op_type == "Conv":
        group = next((int(helper.get_attribute_value(a)) for a in node.attribute if a.name == "group"), 1)
        return dims[1] * group
    if node.op_type == "ConvTranspose":
        return dims[0]
    attrs = {a.name: int(helper.get_attribute_value(a)) for a in node.attribute}
    if attrs.get("transA", 0):
        return 0  # input (K, N): axis 1 is not the reduced one; leave it
    return dims[1] if attrs.get("transB", 0) else dims[0]
