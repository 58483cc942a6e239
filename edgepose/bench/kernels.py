"""Which kernels onnxruntime actually runs: read its optimized graph and count fused vs emulated layers.

A QDQ model says nothing about speed by itself: onnxruntime fuses DequantizeLinear -> Conv ->
QuantizeLinear into one integer kernel (QLinearConv) only where it has one (8-bit on CPUs); 16-bit
QDQ runs as dequantize + float Conv + quantize ("emulated"), slower than float. We ask onnxruntime to
save the graph it will execute (SessionOptions.optimized_model_filepath) and count node types there,
so nobody mistakes an emulated 16-bit figure for a board figure.
"""

from __future__ import annotations

import enum
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgepose.onnxkit.ops import INTEGER_LAYER_OPS
from edgepose.spec import TAIL_PREFIX

# Integer kernels that replace a whole DQ -> Conv/MatMul -> Q group in the graph onnxruntime EXECUTES
# (a different question from onnxkit.ops.QUANTIZED_OPS, "is this file quantized"): the integer layer
# ops a file can hold, plus the forms only onnxruntime's optimizer writes (its NHWC QLinearConv and
# DynamicQuantizeLinear + MatMulInteger fused into one node).
FUSED_INT_OPS = INTEGER_LAYER_OPS | {"NhwcQLinearConv", "DynamicQuantizeMatMul"}
# Float layers: "FusedConv" is Conv + activation, "NhwcFusedConv" its NHWC form.
FLOAT_LAYER_OPS = frozenset(
    {"Conv", "FusedConv", "NhwcFusedConv", "ConvTranspose", "MatMul", "Gemm", "FusedGemm"}
)
_DEQUANTIZE = "DequantizeLinear"


class KernelMode(str, enum.Enum):
    FLOAT = "float"  # no quantized layer at all
    FUSED_INT8 = "fused int8"  # every quantized layer runs an integer kernel
    EMULATED = "emulated"  # every quantized layer runs as dequantize + float kernel
    PARTLY_FUSED = "partly fused"  # some of each (e.g. mixed int8 + int16)


@dataclass(frozen=True)
class Node:
    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class KernelCounts:
    """Weighted layers outside the decode/NMS tail, by how onnxruntime executes them."""

    fused_int: int  # integer kernels (QLinearConv, ConvInteger, ...)
    emulated: int  # float kernels on dequantized weights: quantized in the file, float arithmetic when run
    float_layers: int  # float kernels on float weights (a float model, or the float islands of a mixed one)

    @property
    def mode(self) -> KernelMode:
        if self.fused_int and self.emulated:
            return KernelMode.PARTLY_FUSED
        if self.fused_int:
            return KernelMode.FUSED_INT8
        if self.emulated:
            return KernelMode.EMULATED
        return KernelMode.FLOAT

    def describe(self) -> str:
        """e.g. 'fused int8', 'emulated', '63 fused int8, 8 emulated, 28 float'."""
        if self.mode is KernelMode.FLOAT:
            return self.mode.value
        parts = [(self.fused_int, "fused int8"), (self.emulated, "emulated"), (self.float_layers, "float")]
        present = [(n, what) for n, what in parts if n]
        if len(present) == 1:
            return present[0][1]
        return ", ".join(f"{n} {what}" for n, what in present)


# --- a minimal reader of the ONNX protobuf ------------------------------------------------------------
# Why not `onnx.load`: onnx is not a runtime dependency (bench of ONNX files runs on a board with only
# numpy, OpenCV and onnxruntime), and onnxruntime has no graph API. Node names, types and edges are all
# the bench needs, and they sit at fixed field numbers of onnx.proto (stable since IR version 1).
_MODEL_GRAPH = 7
_GRAPH_NODE = 1
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP_TYPE = 1, 2, 3, 4


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, memoryview | None]]:
    """(field number, bytes) of each length-delimited field; other wire types yield (number, None)."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _varint(buf, i)
            yield number, None
        elif wire == 2:
            size, i = _varint(buf, i)
            yield number, buf[i : i + size]
            i += size
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            yield number, None
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def read_nodes(path: str | os.PathLike[str]) -> list[Node]:
    """The top-level graph's nodes of an ONNX file (subgraphs of If/Loop are not entered)."""
    buf = memoryview(Path(path).read_bytes())
    nodes = []
    for number, graph in _fields(buf):
        if number != _MODEL_GRAPH or graph is None:
            continue
        for gnum, node in _fields(graph):
            if gnum != _GRAPH_NODE or node is None:
                continue
            parts: dict[int, list[str]] = {
                _NODE_INPUT: [],
                _NODE_OUTPUT: [],
                _NODE_NAME: [],
                _NODE_OP_TYPE: [],
            }
            for fnum, value in _fields(node):
                if fnum in parts and value is not None:
                    parts[fnum].append(bytes(value).decode("utf-8"))
            nodes.append(
                Node(
                    name=(parts[_NODE_NAME] or [""])[0],
                    op_type=(parts[_NODE_OP_TYPE] or [""])[0],
                    inputs=tuple(parts[_NODE_INPUT]),
                    outputs=tuple(parts[_NODE_OUTPUT]),
                )
            )
    return nodes


def count_kernels(nodes: list[Node]) -> KernelCounts:
    """Classify the weighted layers outside the tail (its nodes keep TAIL_PREFIX through optimization).

    A float kernel is 'emulated' when its weights come from a DequantizeLinear (a quantized layer run
    in float), and 'float' when they are float constants, whatever its activation input is: a float
    island reads the dequantized 8-bit tensor of its int8 neighbour and still computes in float.
    """
    dq_outputs = {o for n in nodes if n.op_type == _DEQUANTIZE for o in n.outputs}
    fused = emulated = plain = 0
    for n in nodes:
        if n.name.startswith(TAIL_PREFIX):
            continue
        if n.op_type in FUSED_INT_OPS:
            fused += 1
        elif n.op_type in FLOAT_LAYER_OPS:
            weights = n.inputs[1:2] if n.op_type != "MatMul" else n.inputs[:2]
            if any(i in dq_outputs for i in weights):
                emulated += 1
            else:
                plain += 1
    return KernelCounts(fused_int=fused, emulated=emulated, float_layers=plain)


def count_layers(nodes: list[Node]) -> int:
    """Weighted layers outside the tail in a (float or QDQ) model file: what a precision plan assigns."""
    return sum(1 for n in nodes if n.op_type in FLOAT_LAYER_OPS and not n.name.startswith(TAIL_PREFIX))


def optimized_kernels(model_path: str | os.PathLike[str], threads: int | None) -> KernelCounts:
    """Kernel counts of the graph onnxruntime builds for `model_path` with the runtime's session options."""
    import onnxruntime as ort

    from edgepose.runtime.session import session_options

    with tempfile.TemporaryDirectory(prefix="edgepose-bench-") as tmp:
        so = session_options(threads)
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(model_path), sess_options=so, providers=["CPUExecutionProvider"])
        return count_kernels(read_nodes(so.optimized_model_filepath))
