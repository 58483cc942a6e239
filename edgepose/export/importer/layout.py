"""Recognise a third-party pose ONNX (Ultralytics YOLOv8/YOLO11-pose layout) or reject it in one line.

Torch-free (onnx, onnxruntime, numpy). Two kinds of facts are read:

* static ones from the graph: metadata, op types, input/output count and declared shapes;
* which output channels are probabilities, by running the graph once on a seeded random image with the
  outputs of the Sigmoid nodes that reach the model output through data-movement ops only (Concat,
  Reshape, Slice, ...) exposed: a channel is "post-sigmoid" when every one of its values is, bit for
  bit, a value one of those Sigmoids produced. Tracing values instead of channel indices follows the
  Reshape/Concat chains exporters write without modelling each op's index arithmetic.

That per-channel mask tells the layouts apart where shapes alone cannot: a pose output has a sigmoid
person score at channel 4 and pixel keypoint x, y after it; a detection output is sigmoid from channel 4
to the end; a single-output segmentation head ends in 32 raw mask coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from edgepose.errors import ExportError, ModelFileError
from edgepose.export.importer.options import KptConf, Layout
from edgepose.onnxkit.graph import declared_shape, graph_inputs, producers, with_outputs
from edgepose.onnxkit.ops import QUANTIZED_OPS
from edgepose.runtime.session import cpu_session
from edgepose.spec import METADATA_PREFIX

EXPECTED = "(B, 4 + 1 + 3K, N)"
_FIX = "export the raw pose model (Ultralytics: `yolo export model=yolov8n-pose.pt format=onnx`)"
PROBE_SEED = 104  # the probe image; a seed no dataset role uses
MASK_CHANNELS = 32  # Ultralytics segmentation heads: 32 mask coefficients per candidate
# Ops that move or regroup values without changing them: a Sigmoid behind only these still "produces"
# the output's values.
_MOVEMENT_OPS = frozenset(
    {
        "Concat",
        "Reshape",
        "Transpose",
        "Slice",
        "Split",
        "Squeeze",
        "Unsqueeze",
        "Flatten",
        "Identity",
        "Gather",
        "Expand",
    }
)


def fmt_shape(dims: list[int | str] | tuple[int | str, ...]) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def reject_static(model: onnx.ModelProto, src: str) -> None:
    """Reject, from the graph alone, what is not a raw single-output pose model (one-line errors)."""
    if any(p.key.startswith(METADATA_PREFIX) for p in model.metadata_props):
        raise ModelFileError(
            f"{src} is already an edgepose model (it has {METADATA_PREFIX}* metadata); use it as it is "
            "(`edgepose predict`, `quantize`, `bench`) instead of importing it again"
        )
    quantized = sorted({n.op_type for n in model.graph.node} & QUANTIZED_OPS)
    if quantized:
        raise ModelFileError(
            f"{src} is already quantized (it has {quantized[0]} nodes); import the float model, then run "
            "`edgepose quantize` on the import"
        )
    if any(n.op_type == "NonMaxSuppression" for n in model.graph.node):
        raise ModelFileError(
            f"{src} already contains NonMaxSuppression (an end-to-end export); expected the raw output "
            f"{EXPECTED}: {_FIX} without nms=True"
        )
    ins = graph_inputs(model)
    if len(ins) != 1:
        names = ", ".join(f"{i.name} {fmt_shape(declared_shape(i))}" for i in ins)
        raise ModelFileError(f"{src} has {len(ins)} inputs ({names}), expected one image input (B, 3, H, W)")
    shape = declared_shape(ins[0])
    if len(shape) != 4 or shape[1] != 3:
        raise ModelFileError(
            f"{src}: input '{ins[0].name}' has shape {fmt_shape(shape)}, expected an RGB image (B, 3, H, W)"
        )
    if ins[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        elem = onnx.TensorProto.DataType.Name(ins[0].type.tensor_type.elem_type).lower()
        raise ModelFileError(
            f"{src}: input '{ins[0].name}' is {elem}, expected float32 RGB in [0, 1] (the Ultralytics "
            "convention); re-export the model with a float input"
        )
    outs = list(model.graph.output)
    shapes = [declared_shape(o) for o in outs]
    if len(outs) == 2 and len(shapes[1]) == 4 and shapes[1][1] == MASK_CHANNELS:
        raise ModelFileError(
            f"{src} is a segmentation model (outputs {fmt_shape(shapes[0])} and mask prototypes "
            f"{fmt_shape(shapes[1])}); expected one pose output {EXPECTED}: {_FIX}"
        )
    if len(outs) != 1:
        listed = ", ".join(f"'{o.name}' {fmt_shape(s)}" for o, s in zip(outs, shapes, strict=True))
        raise ModelFileError(
            f"{src} has {len(outs)} outputs ({listed}) that edgepose cannot interpret; expected one pose "
            f"output {EXPECTED}: {_FIX}"
        )
    elem = outs[0].type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise ModelFileError(
            f"{src}: output '{outs[0].name}' is {onnx.TensorProto.DataType.Name(elem).lower()}, "
            f"expected float32 "
            f"{EXPECTED}; re-export the model in float32"
        )
    if len(shapes[0]) != 3:
        raise ModelFileError(
            f"{src}: output '{outs[0].name}' has shape {fmt_shape(shapes[0])}, expected {EXPECTED}: {_FIX}"
        )
    # An end-to-end shape (B, N, 6 + 3K) is not rejected here: import_onnx reads it from the probe run and
    # wraps it with the TopK tail (edgepose.export.importer.end2end), or names the shape it cannot use.


def _reject_end2end(shape: list[int | str] | tuple[int, ...], src: str) -> None:
    """Rows of x1, y1, x2, y2, score, class [, K x (x, y, v)] per kept detection: NMS is already done."""
    c, n = shape[1], shape[2]
    # Exporters cap detections at 100 or 300; a raw (B, C, N) output has N in the thousands.
    if isinstance(c, int) and isinstance(n, int) and c >= 100 and 6 <= n < c and (n - 6) % 3 == 0:
        raise ModelFileError(
            f"{src}: output shape {fmt_shape(shape)} looks end-to-end ({c} detections of {n} values, NMS "
            f"already applied); expected the raw output {EXPECTED}: {_FIX} without nms=True/end2end"
        )


def sigmoid_sources(model: onnx.ModelProto, output: str) -> list[str]:
    """Outputs of the Sigmoid nodes that reach `output` through data-movement ops only."""
    prod = producers(model.graph)
    found: list[str] = []
    seen: set[str] = set()
    stack = [output]
    while stack:
        name = stack.pop()
        node = prod.get(name)
        if node is None or name in seen:
            continue
        seen.add(name)
        if node.op_type == "Sigmoid":
            found.append(name)
        elif node.op_type in _MOVEMENT_OPS or _is_float_cast(node):
            stack.append(node.input[0])  # the data input (later inputs are shapes, indices, axes)
            if node.op_type == "Concat":
                stack.extend(node.input[1:])
    return found


def _is_float_cast(node: onnx.NodeProto) -> bool:
    """Cast to float32/64 (exporters emit float -> float casts after type promotion): values unchanged."""
    wide = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
    return node.op_type == "Cast" and any(a.name == "to" and a.i in wide for a in node.attribute)


@dataclass(frozen=True)
class Probe:
    """One run of the source graph on a seeded random image."""

    raw: np.ndarray  # (B, C, N) the model output
    post_sigmoid: np.ndarray  # (C,) bool: every value of the channel is a Sigmoid output


def probe(model: onnx.ModelProto, input_shape: tuple[int, int, int, int]) -> Probe:
    """Run `model` (one input, one output) in onnxruntime and find its post-sigmoid channels."""
    out_name = model.graph.output[0].name
    sig = sigmoid_sources(model, out_name)
    m = with_outputs(model, sig, None)
    try:
        # No fusion: the exposed Sigmoid values must be the very ones that flow into the output.
        sess = cpu_session(m.SerializeToString(), optimize=False)
        x = np.random.default_rng(PROBE_SEED).random(input_shape, dtype=np.float32)  # (B, 3, H, W)
        res = sess.run([out_name, *sig], {graph_inputs(model)[0].name: x})
    except Exception as exc:  # onnxruntime raises its own pybind classes, not a common base
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(
            f"onnxruntime cannot run the model ({reason}); check the file loads in onnxruntime"
        ) from exc
    raw = np.asarray(res[0])
    if raw.ndim != 3:
        raise ModelFileError(f"the model output has shape {fmt_shape(raw.shape)}, expected {EXPECTED}")
    pool = np.unique(np.concatenate([np.asarray(v, np.float32).ravel() for v in res[1:]])) if sig else None
    post = np.zeros(raw.shape[1], bool)
    if pool is not None:
        per_channel = raw.astype(np.float32).transpose(1, 0, 2).reshape(raw.shape[1], -1)  # (C, B * N)
        post = np.array([np.isin(ch, pool).all() for ch in per_channel])
    return Probe(raw=raw, post_sigmoid=post)


@dataclass(frozen=True)
class PoseLayout:
    """What the output holds, as decided by `classify`."""

    num_keypoints: int
    score_prob: bool  # person score already post-sigmoid
    kpt_conf: KptConf  # LOGIT or PROB, resolved
    kpt_conf_reason: str  # how it was decided (for the report)
    notes: tuple[str, ...] = ()


def classify(p: Probe, kpt_conf: KptConf, src: str) -> PoseLayout:
    """Decide K and the score/visibility conventions, or reject the layout with a one-line error."""
    b, c, n = p.raw.shape
    shape = fmt_shape((b, c, n))
    _reject_end2end((b, c, n), src)
    post = p.post_sigmoid
    if c > 4 and post[4:].all():
        raise ModelFileError(
            f"{src}: output {shape} looks like a detection-only model (4 box + {c - 4} class-score channels, "
            f"all sigmoid), expected a pose output {EXPECTED}: {_FIX}"
        )
    nc = c - 4 - MASK_CHANNELS
    if nc >= 1 and post[4 : 4 + nc].all() and not post[4 + nc :].any() and (nc >= 2 or (c - 5) % 3):
        raise ModelFileError(
            f"{src}: output {shape} looks like a segmentation model (4 box + {nc} class scores + "
            f"{MASK_CHANNELS} mask coefficients), expected a pose output {EXPECTED}: {_FIX}"
        )
    if c < 8 or (c - 5) % 3:
        raise ModelFileError(
            f"{src}: output {shape} does not fit {EXPECTED}: C - 5 = {c - 5} keypoint channels is not a "
            f"positive multiple of 3 (x, y, visibility per keypoint); {_FIX}"
        )
    k = (c - 5) // 3
    raw = p.raw
    notes: list[str] = []
    score_prob = bool(post[4]) or bool(((raw[:, 4] >= 0) & (raw[:, 4] <= 1)).all())
    if not score_prob:
        notes.append("person score channel holds logits (values outside [0, 1]); a Sigmoid is applied")
    vis = raw[:, 7::3]  # (B, K, N)
    graph_prob = bool(post[7::3].all())
    outside = bool(((vis < 0) | (vis > 1)).any())
    if kpt_conf is KptConf.AUTO:
        if graph_prob:
            resolved, reason = KptConf.PROB, "auto: the visibility channels come from a Sigmoid in the graph"
        elif outside:
            resolved, reason = (
                KptConf.LOGIT,
                "auto: no Sigmoid before the visibility channels, values outside [0, 1]",
            )
        else:
            raise ModelFileError(
                f"{src}: cannot tell whether the keypoint visibility channels of {shape} are logits or "
                "probabilities (no Sigmoid found, values within [0, 1]); "
                "pass --kpt-conf logit or --kpt-conf prob"
            )
    else:
        resolved, reason = kpt_conf, f"given: --kpt-conf {kpt_conf.value}"
        if kpt_conf is KptConf.LOGIT and graph_prob:
            notes.append(
                "--kpt-conf logit, but the graph applies a Sigmoid already: visibility is squashed twice"
            )
        if kpt_conf is KptConf.PROB and outside:
            notes.append("--kpt-conf prob, but visibility values fall outside [0, 1]: they look like logits")
    return PoseLayout(k, score_prob, resolved, reason, tuple(notes))


def check_layout_option(layout: Layout | str) -> Layout:
    try:
        return Layout(layout)
    except ValueError as exc:
        known = ", ".join(v.value for v in Layout)
        raise ExportError(f"--layout {layout!r} is not supported; use one of: {known}") from exc
