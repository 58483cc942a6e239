"""What makes an ONNX file an edgepose file: IR-version policy, metadata, checker, atomic write.

`finalize` is the one sequence that ends every tool writing an edgepose ONNX file (`export`,
`export --from-onnx` and `quantize`), so all three write the same kind of file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import onnx
from onnx import helper

from edgepose import __version__
from edgepose.errors import ExportError
from edgepose.fsio import atomic_path
from edgepose.spec import METADATA_PREFIX, PoseSpec

# onnx 1.23 stamps IR 14 on every model, which onnxruntime 1.31 (our pin) rejects; it loads IR <= 13.
ORT_MAX_IR_VERSION = 13
PRODUCER = "edgepose"

R = TypeVar("R")


def pin_ir_version(model: onnx.ModelProto) -> int:
    """Set the lowest IR version the model's opsets need (8 for opset 17, 10 for opset 21); return it.

    The lowest, not the newest: older runtimes on boards load it too. An ExportError when even the
    lowest is above what onnxruntime loads.
    """
    ir = helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    if ir > ORT_MAX_IR_VERSION:
        raise ExportError(
            f"opsets {[(i.domain or 'ai.onnx', i.version) for i in model.opset_import]} need IR {ir}, "
            f"onnxruntime loads <= {ORT_MAX_IR_VERSION}; choose a lower --opset"
        )
    model.ir_version = ir
    return ir


def set_metadata(model: onnx.ModelProto, props: Mapping[str, str]) -> None:
    """Replace our metadata_props (METADATA_PREFIX keys) with `props`, written in the order given.

    Other tools' entries are kept, in their order, before ours.
    """
    foreign = [k for k in props if not k.startswith(METADATA_PREFIX)]
    if foreign:
        raise ValueError(f"metadata key {foreign[0]!r} does not start with {METADATA_PREFIX!r}")
    others = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(METADATA_PREFIX)]
    del model.metadata_props[:]
    for key, value in [*others, *props.items()]:
        model.metadata_props.add(key=key, value=value)


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    """All metadata_props entries, ours and other tools'."""
    return {p.key: p.value for p in model.metadata_props}


def spec_of(model: onnx.ModelProto) -> PoseSpec:
    """The PoseSpec in the model's metadata_props (KeyError if it has none)."""
    return PoseSpec.from_metadata(metadata(model))


def check(model: onnx.ModelProto) -> None:
    """onnx.checker full check (types and shapes inferred); an ExportError names the problem."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ExportError(
            f"the graph to write fails onnx.checker ({first}); nothing was written: this is a bug, "
            "please report it"
        ) from exc


@dataclass(frozen=True)
class Written(Generic[R]):
    """What `finalize` wrote."""

    path: Path
    ir_version: int
    size_bytes: int
    verified: R | None  # what the `verify` callback returned (None without one)


def finalize(
    model: onnx.ModelProto,
    meta: PoseSpec | Mapping[str, str],
    out: str | Path,
    *,
    verify: Callable[[onnx.ModelProto], R] | None = None,
    beside: Callable[[], object] | None = None,
) -> Written[R]:
    """Pin the IR version, write our metadata, stamp edgepose as producer, check, verify, save; in place.

    `meta` is the spec (PoseSpec.to_metadata order) or our metadata entries as they should be written.
    `verify(model)` runs on the finished graph before anything is written (its errors stop the write);
    `beside()` writes companion files inside the model's atomic write, so a companion that cannot be
    written (disk full, Ctrl-C) takes the model's temp file with it. Nothing is written unless all pass.
    """
    ir = pin_ir_version(model)
    set_metadata(model, meta.to_metadata() if isinstance(meta, PoseSpec) else meta)
    model.producer_name, model.producer_version = PRODUCER, __version__
    check(model)
    verified = verify(model) if verify is not None else None
    with atomic_path(out) as tmp:  # one file, no external data
        onnx.save_model(model, str(tmp))
        if beside is not None:
            beside()
    path = Path(out)
    return Written(path=path, ir_version=ir, size_bytes=path.stat().st_size, verified=verified)
