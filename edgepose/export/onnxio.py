"""ONNX file facts shared by export, quantization and import (torch-free: onnx only).

IR version, metadata, the full checker, node counts and the atomic save live here, so every tool that
writes an edgepose ONNX file (export, `quantize`, `export --from-onnx`) writes the same kind of file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import helper

from edgepose.errors import ExportError
from edgepose.fsio import atomic_path
from edgepose.spec import METADATA_PREFIX, TAIL_PREFIX, PoseSpec

# onnx 1.23 stamps IR 14 on every model, which onnxruntime 1.31 (our pin) rejects; it loads IR <= 13.
ORT_MAX_IR_VERSION = 13


def pin_ir_version(model: onnx.ModelProto) -> int:
    """Set the lowest IR version the model's opsets need (8 for opset 17, 10 for opset 21).

    The lowest, not the newest: older runtimes on boards load it too. Returns the version set.
    """
    ir = helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    if ir > ORT_MAX_IR_VERSION:
        raise ExportError(
            f"opsets {[(i.domain or 'ai.onnx', i.version) for i in model.opset_import]} need IR {ir}, "
            f"onnxruntime loads <= {ORT_MAX_IR_VERSION}; choose a lower --opset"
        )
    model.ir_version = ir
    return ir


def dedupe_opsets(model: onnx.ModelProto) -> None:
    """Keep one opset_import per domain (the highest version).

    onnx.compose.merge_models lists a domain once per merged model; onnxruntime tolerates that, but
    onnxruntime.quantization's quantize_static does not ("Failed to find proper ai.onnx domain").
    """
    best: dict[str, int] = {}
    for imp in model.opset_import:
        dom = "" if imp.domain == "ai.onnx" else imp.domain
        best[dom] = max(best.get(dom, 0), int(imp.version))
    del model.opset_import[:]
    for dom, ver in best.items():
        model.opset_import.append(helper.make_opsetid(dom, ver))


def set_metadata(model: onnx.ModelProto, spec: PoseSpec) -> None:
    """Replace our metadata_props (METADATA_PREFIX keys) with `spec`; keeps other tools' entries."""
    others = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(METADATA_PREFIX)]
    del model.metadata_props[:]
    for key, value in [*others, *spec.to_metadata().items()]:
        model.metadata_props.add(key=key, value=value)


def read_spec(model: onnx.ModelProto) -> PoseSpec:
    """The PoseSpec in the model's metadata_props (KeyError if it has none)."""
    return PoseSpec.from_metadata({p.key: p.value for p in model.metadata_props})


def check(model: onnx.ModelProto) -> None:
    """onnx.checker full check (types and shapes inferred); an ExportError names the problem."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ExportError(
            f"the exported graph fails onnx.checker ({first}); this is a bug, please report it"
        ) from exc


@dataclass(frozen=True)
class NodeCounts:
    total: int
    tail: int  # nodes named under TAIL_PREFIX (decode + NMS)
    nms: int  # NonMaxSuppression nodes
    convs: int
    by_op: dict[str, int]


def node_counts(model: onnx.ModelProto) -> NodeCounts:
    ops = Counter(n.op_type for n in model.graph.node)
    tail = sum(n.name.startswith(TAIL_PREFIX) for n in model.graph.node)
    return NodeCounts(len(model.graph.node), tail, ops["NonMaxSuppression"], ops["Conv"], dict(ops))


def save(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write atomically (temp file beside `path`, then rename); one file, no external data."""
    with atomic_path(path) as tmp:
        onnx.save_model(model, str(tmp))
    return Path(path)
