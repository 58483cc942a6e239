"""Cross-layer equalization (Nagel et al., "Data-Free Quantization", 2019) of Conv -> ReLU -> Conv pairs.

ReLU is positively homogeneous, relu(x / s) = relu(x) / s for s > 0, so dividing output channel i of
the first conv (weights and bias) by s_i and multiplying input channel i of the second by s_i leaves
the network's function unchanged. With s_i = sqrt(r1_i / r2_i), where r1_i is the range of the first
conv's output channel i and r2_i the range of the second conv's input channel i, both become
sqrt(r1_i * r2_i): the second conv's per-output-channel 8-bit grid no longer has to cover one
input channel ten times wider than the others, and the activation between them gets narrower
channels where the first conv was wide.

Only exact pairs are touched: the first conv's output is read by one Relu only, the Relu's output by
one Conv only, both with weights as initializers and group 1. SiLU, ReLU6 (Clip: not homogeneous at
its upper bound) and branching tensors are left alone, so SiLU networks such as YOLO11 have no pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgepose.onnxkit.graph import consumers
from edgepose.spec import TAIL_PREFIX

S_MIN, S_MAX = 1e-2, 1e2  # keep the rescaling bounded when a channel is (almost) dead


@dataclass(frozen=True)
class Pair:
    first: str
    second: str


def _group(node: onnx.NodeProto) -> int:
    return next((int(helper.get_attribute_value(a)) for a in node.attribute if a.name == "group"), 1)


def find_pairs(model: onnx.ModelProto) -> list[Pair]:
    """Conv -> Relu -> Conv chains with no branching, group 1, initializer weights, outside the tail."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    readers = consumers(g)
    out = []
    for c1 in g.node:
        if c1.op_type != "Conv" or c1.name.startswith(TAIL_PREFIX) or _group(c1) != 1:
            continue
        if c1.input[1] not in inits or (len(c1.input) > 2 and c1.input[2] and c1.input[2] not in inits):
            continue
        r = readers.get(c1.output[0], [])
        if len(r) != 1 or r[0].op_type != "Relu":
            continue
        r2 = readers.get(r[0].output[0], [])
        if len(r2) != 1 or r2[0].op_type != "Conv" or _group(r2[0]) != 1 or r2[0].input[0] != r[0].output[0]:
            continue
        if r2[0].input[1] not in inits or r2[0].name.startswith(TAIL_PREFIX):
            continue
        out.append(Pair(c1.name, r2[0].name))
    return out


def equalize(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[Pair]]:
    """A copy of `model` with every pair equalized (weights shared with other nodes are left alone)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    nodes = {n.name: n for n in g.node}
    inits = {t.name: t for t in g.initializer}
    uses = {t: len(ns) for t, ns in consumers(g).items()}  # how many inputs read each tensor
    done = []
    for pair in find_pairs(m):
        c1, c2 = nodes[pair.first], nodes[pair.second]
        names = [c1.input[1], c2.input[1]] + ([c1.input[2]] if len(c1.input) > 2 and c1.input[2] else [])
        if any(uses.get(t, 0) != 1 for t in names):
            continue
        w1 = numpy_helper.to_array(inits[c1.input[1]]).astype(np.float64)  # (C, Cin, kh, kw)
        w2 = numpy_helper.to_array(inits[c2.input[1]]).astype(np.float64)  # (Cout, C, kh, kw)
        if w2.shape[1] != w1.shape[0]:
            continue
        r1 = np.max(np.abs(w1.reshape(w1.shape[0], -1)), axis=1)  # (C,)
        r2 = np.max(np.abs(w2.transpose(1, 0, 2, 3).reshape(w2.shape[1], -1)), axis=1)  # (C,)
        s = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.maximum(r2, 1e-30)), 1.0)
        s = np.clip(s, S_MIN, S_MAX)
        inits[c1.input[1]].CopyFrom(
            numpy_helper.from_array((w1 / s[:, None, None, None]).astype(np.float32), c1.input[1])
        )
        inits[c2.input[1]].CopyFrom(
            numpy_helper.from_array((w2 * s[None, :, None, None]).astype(np.float32), c2.input[1])
        )
        if len(c1.input) > 2 and c1.input[2]:
            b1 = numpy_helper.to_array(inits[c1.input[2]]).astype(np.float64)
            inits[c1.input[2]].CopyFrom(numpy_helper.from_array((b1 / s).astype(np.float32), c1.input[2]))
        done.append(pair)
    return m, done
