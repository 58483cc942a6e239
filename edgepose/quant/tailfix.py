"""Keep the decode/NMS tail, and the ops between the last layers and it, float after quantize_static.

Excluding those nodes is not enough: when a head conv is quantized, onnxruntime puts a Q/DQ pair on
its output and rewires EVERY consumer to the dequantized tensor, which would squeeze boxes, scores and
keypoints into one 8-bit range. We rewire the float region back to the float tensors and drop the
pairs nothing else reads (the head conv then reads 8-bit inputs and weights but writes float).
"""

from __future__ import annotations

import onnx
from onnx import helper

from edgepose.onnxkit.graph import consumers, producers
from edgepose.onnxkit.ops import QDQ_OPS
from edgepose.quant.graph import float_nodes
from edgepose.spec import TAIL_PREFIX


def _float_source(prod: dict[str, onnx.NodeProto], name: str) -> str:
    """Follow Q/DQ (and Q/DQ/Q/DQ conversions) back to the float tensor they quantize."""
    while (p := prod.get(name)) is not None and p.op_type in QDQ_OPS:
        name = p.input[0]
    return name


def keep_tail_float(q: onnx.ModelProto, original: onnx.ModelProto) -> None:
    """Rewire the float region's inputs in `q` (quantized from `original`) to float tensors; in place."""
    g = q.graph
    prod, orig_prod = producers(g), producers(original.graph)
    inits = {t.name for t in g.initializer}
    orig_inits = {t.name: t for t in original.graph.initializer}
    refloat: dict[str, str] = {}
    names = {n.name for n in float_nodes(original) if n.name}
    region = [n for n in g.node if n.name in names]
    for node in region:
        for j, t in enumerate(node.input):
            p = prod.get(t)
            if p is None or p.op_type not in QDQ_OPS:
                continue
            src = _float_source(prod, t)
            was, now = orig_prod.get(src), prod.get(src)
            if was is not None and now is not None and was.op_type != now.op_type and src not in refloat:
                # The quantizer folded a Relu/Clip into the Q range and renamed its input to `src`:
                # re-apply that activation in float, as a tail node.
                act = helper.make_node(
                    was.op_type, [src, *was.input[1:]], [f"{TAIL_PREFIX}float/{src}"],
                    name=f"{TAIL_PREFIX}float/{was.name}",
                )  # fmt: skip
                act.attribute.extend(was.attribute)
                for extra in was.input[1:]:
                    if extra and extra not in inits and extra in orig_inits:
                        g.initializer.append(orig_inits[extra])
                        inits.add(extra)
                at = list(g.node).index(now) + 1
                g.node.insert(at, act)
                refloat[src] = act.output[0]
            node.input[j] = refloat.get(src, src)
    _drop_dead_qdq(g)
    check_float_region(q, names)


def _drop_dead_qdq(g: onnx.GraphProto) -> None:
    """Remove Q/DQ nodes nothing reads, and the scale/zero-point initializers only they used."""
    outputs = {o.name for o in g.output}
    freed: set[str] = set()
    while True:
        used = consumers(g)
        dead = [
            n for n in g.node if n.op_type in QDQ_OPS and not any(o in used or o in outputs for o in n.output)
        ]
        if not dead:
            break
        for n in dead:
            freed.update(n.input)
            g.node.remove(n)
    used = consumers(g)
    drop = {t.name for t in g.initializer if t.name in freed and t.name not in used}
    if drop:
        keep = [t for t in g.initializer if t.name not in drop]
        del g.initializer[:]
        g.initializer.extend(keep)


def check_float_region(q: onnx.ModelProto, names: set[str]) -> None:
    """RuntimeError (a bug, not a user error) if a Q/DQ sits in, or feeds, the tail or the float region."""
    prod = producers(q.graph)
    for n in q.graph.node:
        if not (n.name in names or n.name.startswith(TAIL_PREFIX)):
            continue
        if n.op_type in QDQ_OPS:
            raise RuntimeError(f"quantization left {n.op_type} {n.name} inside the float tail")
        for t in n.input:
            p = prod.get(t)
            if p is not None and p.op_type in QDQ_OPS:
                raise RuntimeError(f"float node {n.name} reads quantized tensor {t}")
