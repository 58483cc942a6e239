"""Open an end-to-end edgepose ONNX in onnxruntime and describe its inputs; every failure is one line."""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from edgepose.errors import ConfigError, ModelFileError
from edgepose.spec import (
    DETECTIONS_NAME,
    INPUT_NAME,
    IOU_THR_NAME,
    MAX_DET_NAME,
    METADATA_PREFIX,
    NUM_DETS_NAME,
    SCORE_THR_NAME,
    GraphKind,
    InputFormat,
    PoseSpec,
)

_ORT_TYPES = {InputFormat.FLOAT: "tensor(float)", InputFormat.UINT8: "tensor(uint8)"}


@dataclass(frozen=True)
class ModelIO:
    """What the loaded graph accepts: its batch size and which run-time overrides it exposes."""

    batch: int | None  # fixed batch size, or None when the batch dim is dynamic
    overrides: dict[str, list[int | str | None]]  # override input name -> declared shape ([] for a scalar)
    required: frozenset[str] = frozenset()  # overrides without a baked-in default: always fed

    def has(self, name: str) -> bool:
        return name in self.overrides


def _providers(requested: list[str] | None) -> list[str]:
    available = ort.get_available_providers()
    if requested is None:
        # CPU by default: the board target, and the provider every build has. Others must be asked for.
        return ["CPUExecutionProvider"]
    for name in requested:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"execution provider {name!r} is not available in this onnxruntime build; {hint}"
                f"available: {', '.join(available)}"
            )
    return list(requested)


def session_options(
    threads: int | None = None, *, optimize: bool = True, quiet: bool = False
) -> ort.SessionOptions:
    """The one onnxruntime SessionOptions factory (runtime, quantization, export and import checks, bench).

    `threads`: intra-op threads; None means onnxruntime's own default (one per physical core), for every
    caller (OMP_NUM_THREADS is not consulted). Inter-op threads are 1: the sequential executor, which
    every session here uses, never runs more. `optimize=False` turns graph optimization off (a
    probe that must see the graph's own tensors). Log level: errors only, since the overridable-
    initializer warning is expected by design; `quiet` silences errors too, for runs whose failure is
    expected and handled.
    """
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}; omit it to let onnxruntime decide")
    so = ort.SessionOptions()
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    if threads is not None:
        so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 4 if quiet else 3
    return so


def cpu_session(
    model: bytes | str | os.PathLike[str],
    threads: int | None = None,
    *,
    optimize: bool = True,
    quiet: bool = False,
) -> ort.InferenceSession:
    """A CPU session on a serialized model (`ModelProto.SerializeToString()`) or a file, `session_options`."""
    so = session_options(threads, optimize=optimize, quiet=quiet)
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=so, providers=["CPUExecutionProvider"])


def open_session(
    model_path: str | os.PathLike[str], threads: int | None = None, providers: list[str] | None = None
) -> tuple[ort.InferenceSession, PoseSpec, ModelIO]:
    """Load `model_path`, read its PoseSpec from the metadata, and check it is an end-to-end graph."""
    path = Path(model_path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file; pass the .onnx written by `edgepose export`")
    if not path.is_file():
        raise ModelFileError(
            f"{path} is a folder, not a model file; pass the .onnx written by `edgepose export`"
        )
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path} is empty (0 bytes); pass the .onnx written by `edgepose export`")
    options, chosen = session_options(threads), _providers(providers)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own pybind classes, not a common base
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if type(exc).__name__ == "InvalidProtobuf":
            raise ModelFileError(
                f"{path} is not an ONNX model (protobuf parsing failed); pass a .onnx from `edgepose export`"
            ) from exc
        raise ModelFileError(
            f"{path} cannot be loaded by onnxruntime {ort.__version__} ({reason}); "
            "re-export it with `edgepose export`"
        ) from exc
    spec = load_runtime_spec(path, session.get_modelmeta().custom_metadata_map)
    io = check_io(path, session, spec)
    return session, spec, io


def load_runtime_spec(path: Path, props: dict[str, str]) -> PoseSpec:
    """The PoseSpec in `props` (the file's metadata) of a graph the runtime can run; one-line errors."""
    try:
        spec = PoseSpec.from_metadata(props)
    except KeyError as exc:
        raise ModelFileError(
            f"{path} has no edgepose metadata (no {METADATA_PREFIX}input_size in metadata_props); "
            "export it with `edgepose export`, or wrap a third-party model with `edgepose export --from-onnx`"
        ) from exc
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ModelFileError(
            f"{path} has unreadable edgepose metadata ({exc}); re-export it with `edgepose export`"
        ) from exc
    if spec.graph is GraphKind.RAW:
        raise ModelFileError(
            f"{path} is a raw-head graph (exported with --no-nms, for vendor compilers) without decode and "
            "NMS; the runtime needs the end-to-end graph: re-export without --no-nms"
        )
    return spec


def check_io(path: Path, session: ort.InferenceSession, spec: PoseSpec) -> ModelIO:
    """Check the graph's I/O against the spec.py contract; return its batch size and override inputs."""
    inputs = {i.name: i for i in session.get_inputs()}
    # Overrides with a baked-in default are initializers that are also graph inputs: onnxruntime lists
    # them apart from the required inputs. Either place counts.
    overridable = {i.name: i for i in session.get_overridable_initializers()}
    outputs = {o.name: o for o in session.get_outputs()}
    if INPUT_NAME not in inputs:
        raise ModelFileError(
            f"{path} has no input {INPUT_NAME!r} (inputs: {', '.join(inputs)}); "
            "re-export it with `edgepose export`"
        )
    missing = [n for n in (DETECTIONS_NAME, NUM_DETS_NAME) if n not in outputs]
    if missing:
        raise ModelFileError(
            f"{path} lacks output(s) {', '.join(missing)} (outputs: {', '.join(outputs)}); "
            "re-export it with `edgepose export`"
        )
    image = inputs[INPUT_NAME]
    expected_type = _ORT_TYPES[spec.input_format]
    if image.type != expected_type:
        raise ModelFileError(
            f"{path}: metadata says input format {spec.input_format.value!r} but input {INPUT_NAME!r} is "
            f"{image.type}; re-export it with `edgepose export`"
        )
    shape = list(image.shape)
    hw = tuple(shape[2:4])
    if len(shape) != 4 or (all(isinstance(d, int) for d in hw) and hw != tuple(spec.input_size)):
        raise ModelFileError(
            f"{path}: input {INPUT_NAME!r} has shape {shape}, metadata says (B, 3, {spec.input_size[0]}, "
            f"{spec.input_size[1]}); re-export it with `edgepose export`"
        )
    width = outputs[DETECTIONS_NAME].shape[-1]
    if isinstance(width, int) and width != spec.det_width:
        raise ModelFileError(
            f"{path}: output {DETECTIONS_NAME!r} rows have {width} values, expected {spec.det_width} "
            f"(6 + 3 x {spec.num_keypoints} keypoints); re-export it with `edgepose export`"
        )
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    overrides = {
        name: list(src[name].shape)
        for name in (SCORE_THR_NAME, IOU_THR_NAME, MAX_DET_NAME)
        for src in (inputs, overridable)
        if name in src
    }
    required = frozenset(n for n in overrides if n in inputs and n not in overridable)
    return ModelIO(batch=batch, overrides=overrides, required=required)
