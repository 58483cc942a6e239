"""ONNX graph facts quantization needs: the float tail, the body before it, the weighted layers.

Everything is found from the graph itself (node names under spec.TAIL_PREFIX, op types,
initializers), never from our own layer names, so third-party graphs wrapped by
`edgepose export --from-onnx` work the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgepose.errors import ModelFileError
from edgepose.onnxkit.graph import consumers, dedupe_opsets, default_opset, producers, tail_nodes
from edgepose.onnxkit.model import spec_of
from edgepose.onnxkit.ops import QUANTIZED_OPS
from edgepose.spec import INPUT_NAME, TAIL_PREFIX, GraphKind, PoseSpec, Precision

# Weighted ops: the "layers" a precision plan assigns. Per-channel axis = onnxruntime's default.
LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_FIX_HINT = (
    "run `edgepose export` on a checkpoint, "
    "or `edgepose export --from-onnx MODEL.onnx` for a third-party pose ONNX"
)


@dataclass(frozen=True)
class Layer:
    """A weighted node outside the tail: what a precision plan assigns a precision to."""

    name: str
    op: str
    weight: str  # initializer name
    activations: tuple[str, ...]  # non-initializer inputs (what the layer reads)
    axis: int  # per-channel axis of the weight


def load_float_model(path: str | os.PathLike[str]) -> tuple[onnx.ModelProto, PoseSpec]:
    """Load an end-to-end, float edgepose export; ModelFileError naming the fix otherwise."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"model {p} does not exist; pass the .onnx file written by `edgepose export`")
    if p.stat().st_size == 0:
        raise ModelFileError(f"{p} is empty (0 bytes); {_FIX_HINT}")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # onnx raises DecodeError, OSError, ...: all mean "not a readable ONNX"
        raise ModelFileError(f"{p} is not a readable ONNX file ({type(exc).__name__}); {_FIX_HINT}") from exc
    dedupe_opsets(model)
    try:
        spec = spec_of(model)
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{p} has no edgepose metadata (not an edgepose export); {_FIX_HINT}") from exc
    quantized = sorted({n.op_type for n in model.graph.node if n.op_type in QUANTIZED_OPS})
    if spec.precision is not Precision.FLOAT or quantized:
        what = (
            f"precision {spec.precision.value}"
            if spec.precision is not Precision.FLOAT
            else "has " + quantized[0]
        )
        raise ModelFileError(
            f"{p} is already quantized ({what}); quantize the float export instead (re-run `edgepose export`)"
        )
    if spec.graph is GraphKind.RAW:
        raise ModelFileError(
            f"{p} is a raw-head graph (exported with --no-nms); quantize the end-to-end export "
            "(`edgepose export` without --no-nms): its float decode/NMS tail keeps boxes and poses exact"
        )
    if not tail_nodes(model):
        raise ModelFileError(f"{p} has no decode/NMS tail (no node named '{TAIL_PREFIX}...'); {_FIX_HINT}")
    if INPUT_NAME not in {i.name for i in model.graph.input}:
        raise ModelFileError(f"{p} has no '{INPUT_NAME}' input; {_FIX_HINT}")
    return model, spec


def raw_head_outputs(model: onnx.ModelProto) -> list[str]:
    """The raw head outputs: the tensors the float tail reads from the network body, in graph order."""
    prod = producers(model.graph)
    seen: list[str] = []
    for n in tail_nodes(model):
        for i in n.input:
            p = prod.get(i)
            if p is not None and not p.name.startswith(TAIL_PREFIX) and i not in seen:
                seen.append(i)
    return seen


def float_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The tail plus the non-layer ops between the last layers and the tail (Reshape, Transpose, Sigmoid,
    Concat of levels, ...): all kept float, so the raw head outputs (boxes, scores and keypoints in one
    tensor) never pass through a single 8-bit range."""
    prod = producers(model.graph)
    inits = {t.name for t in model.graph.initializer}
    region = {n.name: n for n in tail_nodes(model)}
    stack = raw_head_outputs(model)
    seen: set[str] = set()
    while stack:
        t = stack.pop()
        p = prod.get(t)
        if t in seen or p is None or t in inits:
            continue
        seen.add(t)
        if p.op_type in LAYER_OPS and len(p.input) > 1 and p.input[1] in inits:
            continue  # a layer: its output is float (nothing in the region quantizes it), its inputs are not
        region[p.name or f"<{p.op_type}:{p.output[0]}>"] = p
        stack.extend(i for i in p.input if i)
    return [n for n in model.graph.node if any(n is r for r in region.values())]


def body_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """The network without its tail: input INPUT_NAME, outputs = the raw head outputs (float)."""
    outs = raw_head_outputs(model)
    prod = producers(model.graph)
    keep: set[str] = set()
    stack = list(outs)
    while stack:  # walk back from the outputs: only nodes that feed them stay
        n = prod.get(stack.pop())
        if n is None or n.name in keep:
            continue
        keep.add(n.name)
        stack.extend(i for i in n.input if i)
    body = onnx.ModelProto()
    body.CopyFrom(model)
    g = body.graph
    nodes = [n for n in model.graph.node if n.name in keep]
    used = {i for n in nodes for i in n.input}
    del g.node[:]
    g.node.extend(nodes)
    inits = [t for t in model.graph.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    ins = [i for i in model.graph.input if i.name == INPUT_NAME]
    del g.input[:]
    g.input.extend(ins)
    del g.output[:]
    g.output.extend(helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outs)
    return body


def find_layers(model: onnx.ModelProto) -> list[Layer]:
    """Weighted nodes outside the tail, in graph order."""
    inits = {t.name for t in model.graph.initializer}
    layers = []
    for n in model.graph.node:
        if n.op_type not in LAYER_OPS or n.name.startswith(TAIL_PREFIX) or len(n.input) < 2:
            continue
        if n.input[1] not in inits:
            continue  # activation x activation MatMul: no weight to plan
        if not n.name:
            raise ModelFileError(
                f"a {n.op_type} node has no name; re-export the model (every node needs one)"
            )
        if n.op_type == "Conv":
            axis = 0
        elif n.op_type == "Gemm":
            axis = 0 if any(a.name == "transB" and a.i for a in n.attribute) else 1
        else:  # ConvTranspose (C_in, C_out/g, ...) and MatMul (K, N): output channels on axis 1
            axis = 1
        acts = tuple(i for j, i in enumerate(n.input) if i and j != 1 and i not in inits)
        layers.append(Layer(n.name, n.op_type, n.input[1], acts, axis))
    return layers


def upgrade_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """Convert to `opset` with onnx's version converter, keeping every node named and the tail prefixed.

    Adapter nodes the converter adds next to tail nodes join the tail (so they stay float).
    """
    if default_opset(model) >= opset:
        return model
    before = {n.name for n in model.graph.node}
    try:
        out = onnx.version_converter.convert_version(model, opset)
    except Exception as exc:
        raise ModelFileError(
            f"cannot convert the graph from opset {default_opset(model)} to {opset} for 16-bit Q/DQ ({exc}); "
            f"re-export with --opset {opset}"
        ) from exc
    prod, cons = producers(out.graph), consumers(out.graph)
    for i, n in enumerate(out.graph.node):
        if n.name and n.name in before:
            continue
        near = [prod.get(t) for t in n.input] + [c for t in n.output for c in cons.get(t, [])]
        in_tail = any(m is not None and m.name.startswith(TAIL_PREFIX) for m in near)
        n.name = f"{TAIL_PREFIX if in_tail else ''}opset{opset}_{n.op_type}_{i}"
    del out.metadata_props[:]
    out.metadata_props.extend(model.metadata_props)
    return out


def dequantized_initializer(qdq: onnx.ModelProto, dq: onnx.NodeProto) -> np.ndarray:
    """The float values a DequantizeLinear of an initializer produces (per-tensor or per-channel)."""
    inits = {t.name: t for t in qdq.graph.initializer}
    q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
    zp = numpy_helper.to_array(inits[dq.input[2]]).astype(np.float64) if len(dq.input) > 2 else 0.0
    if scale.ndim == 1 and scale.size > 1:
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) % q.ndim
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), np.reshape(zp, shape) if np.ndim(zp) else zp  # broadcast on axis
    return ((q - zp) * scale).astype(np.float32)


def chain_tensors(layers: Sequence[Layer], graph: onnx.GraphProto, stop: set[str]) -> list[str]:
    """Activation tensors `layers` read, walked upstream through non-layer ops to the producing layers.

    The producing layers' outputs are included (a 16-bit plan writes them at 16 bits); nodes named in
    `stop` (the float tail) end the walk.
    """
    prod = producers(graph)
    inits = {t.name for t in graph.initializer}
    seen: set[str] = set()
    stack = [t for la in layers for t in la.activations]
    while stack:
        t = stack.pop()
        if t in seen or t in inits:
            continue
        seen.add(t)
        p = prod.get(t)
        if p is not None and p.op_type not in LAYER_OPS and p.name not in stop:
            stack.extend(i for i in p.input if i)
    return sorted(seen)
