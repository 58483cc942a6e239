"""The float twin of a quantized model: each layer computed in float on the quantized model's tensors.

`twin_model` appends to a QDQ model a float copy of its float body whose layers read the *quantized*
layers' outputs (every other op - SiLU, Concat, Resize, ... - is recomputed in float on them). So for a
layer L, twin and quantized model differ only by what L itself adds: its weights and the 8-bit rounding
of the tensors between the layers upstream and L, never an error propagated from upstream, which those
layers answer for. Bias correction (edgepose.quant.biascorr) reads the twin's layer outputs; fitted
rounding (edgepose.quant.rounding) reads the twin's layer inputs (`layer_inputs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from edgepose.onnxkit.graph import default_opset
from edgepose.quant.graph import Layer, upgrade_opset
from edgepose.spec import INPUT_NAME

TWIN = "ep_twin/"


def twin_model(
    qdq: onnx.ModelProto, float_body: onnx.ModelProto, layers: Sequence[Layer]
) -> tuple[onnx.ModelProto, list[tuple[str, str]]]:
    """`qdq` plus a float twin of `float_body` whose layers read the quantized layers' outputs.

    Returns the model and, per layer found in both, (quantized output, twin output) tensor names, both
    before any activation (the layer node's own output). No output is added: a caller fetches what it
    reads (onnxkit.graph.with_outputs), and only that is held until a run ends.
    """
    body = upgrade_opset(float_body, default_opset(qdq))
    m = onnx.ModelProto()
    m.CopyFrom(qdq)
    g = m.graph
    qnodes = {n.name: n for n in g.node}
    fnodes = {n.name: n for n in body.graph.node}
    found = [la for la in layers if la.name in qnodes and la.name in fnodes]
    to_quantized = {fnodes[la.name].output[0]: qnodes[la.name].output[0] for la in found}

    def name(t: str) -> str:
        if not t or t == INPUT_NAME:
            return t
        return to_quantized.get(t, TWIN + t)

    for init in body.graph.initializer:
        c = onnx.TensorProto()
        c.CopyFrom(init)
        c.name = TWIN + init.name
        g.initializer.append(c)
    for n in body.graph.node:
        c = onnx.NodeProto()
        c.CopyFrom(n)
        c.name = TWIN + n.name
        del c.input[:]
        c.input.extend(name(i) for i in n.input)
        del c.output[:]
        c.output.extend(TWIN + o if o else o for o in n.output)
        g.node.append(c)
    return m, [(qnodes[la.name].output[0], TWIN + fnodes[la.name].output[0]) for la in found]


def layer_inputs(twin: onnx.ModelProto, layers: Sequence[Layer]) -> dict[str, tuple[str, str]]:
    """Per layer of `twin_model`'s result: (its 8-bit input as the quantized model reads it - the
    DequantizeLinear output - and the same input computed in float by the twin)."""
    nodes = {n.name: n for n in twin.graph.node}
    return {
        la.name: (nodes[la.name].input[0], nodes[TWIN + la.name].input[0])
        for la in layers
        if la.name in nodes and TWIN + la.name in nodes
    }
