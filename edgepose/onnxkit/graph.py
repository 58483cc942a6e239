"""Graph queries every ONNX tool here needs: edges, inputs, the float tail, opsets, node counts, extra
outputs."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx import helper

from edgepose.defaults import DEFAULT_OPSET
from edgepose.errors import ModelFileError
from edgepose.spec import TAIL_PREFIX

_DEFAULT_DOMAINS = ("", "ai.onnx")


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """Tensor name -> the node that writes it."""
    return {o: n for n in graph.node for o in n.output if o}


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor name -> the nodes that read it, in graph order."""
    out: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in graph.node:
        for i in n.input:
            if i:
                out[i].append(n)
    return out


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Inputs that are not initializers (what a caller must feed)."""
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def declared_shape(vi: onnx.ValueInfoProto) -> list[int | str]:
    """Declared dims: an int when static, the dim_param (or '?') when dynamic."""
    dims = vi.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]


def with_outputs(
    model: onnx.ModelProto, names: Sequence[str], elem_type: int | None = onnx.TensorProto.FLOAT
) -> onnx.ModelProto:
    """A copy of `model` that also outputs `names`, appended in order, each unless already an output.

    Each new output is declared `elem_type` with no shape; `elem_type=None` declares it untyped (for
    tensors of a third-party graph whose type is not known). `model` is left untouched.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            have.add(n)
            m.graph.output.append(
                helper.make_empty_tensor_value_info(n)
                if elem_type is None
                else helper.make_tensor_value_info(n, elem_type, None)
            )
    return m


def tail_nodes(model: onnx.ModelProto, prefix: str = TAIL_PREFIX) -> list[onnx.NodeProto]:
    """Nodes of the decode + NMS tail (named under `prefix`), in graph order."""
    return [n for n in model.graph.node if n.name.startswith(prefix)]


def default_opset(model: onnx.ModelProto) -> int:
    """The model's default-domain ("" / ai.onnx) opset version."""
    for imp in model.opset_import:
        if imp.domain in _DEFAULT_DOMAINS:
            return int(imp.version)
    raise ModelFileError(
        f"the ONNX graph imports no default-domain (ai.onnx) opset; re-export it with opset {DEFAULT_OPSET}"
    )


def dedupe_opsets(model: onnx.ModelProto) -> None:
    """One opset_import per domain, the highest version winning; in place, untouched when already unique.

    onnxruntime runs a model that lists a domain twice, but onnxruntime.quantization's quantize_static
    rejects it ("Failed to find proper ai.onnx domain").
    """
    best: dict[str, int] = {}
    for imp in model.opset_import:
        dom = "" if imp.domain == "ai.onnx" else imp.domain
        best[dom] = max(best.get(dom, 0), int(imp.version))
    if len(best) != len(model.opset_import):
        del model.opset_import[:]
        model.opset_import.extend(helper.make_opsetid(d, v) for d, v in best.items())


@dataclass(frozen=True)
class NodeCounts:
    total: int
    tail: int  # nodes named under TAIL_PREFIX (decode + NMS)
    nms: int  # NonMaxSuppression nodes
    convs: int
    by_op: dict[str, int]


def node_counts(model: onnx.ModelProto) -> NodeCounts:
    ops = Counter(n.op_type for n in model.graph.node)
    tail = len(tail_nodes(model))
    return NodeCounts(len(model.graph.node), tail, ops["NonMaxSuppression"], ops["Conv"], dict(ops))
