"""The NMS tail: NonMaxSuppression + gather of the kept boxes and poses, built with onnx.helper.

Appendable to ANY graph that yields, per image, candidate boxes (B, N, 4) x1y1x2y2, scores (B, N) and
flattened keypoints (B, N, 3K) — our own decode, or an adapter over a third-party head (issue 9). It
turns them into the end-to-end contract of `edgepose.spec`: a zero-padded DETECTIONS_NAME
(B, max_det, 6 + 3K) and NUM_DETS_NAME (B,), with the score/IoU thresholds and the detection cap as
graph inputs whose initializers hold the baked defaults (feed them to override at run time).

Torch-free: onnx only. Every node and every tensor it adds is named under `prefix` (spec.TAIL_PREFIX),
which is how quantization finds the tail and keeps it float.

Ordering contract: NonMaxSuppression returns selected indices batch by batch, each batch in descending
score order (onnxruntime's CPU kernel loops batch -> class -> score-sorted queue), so row i's slot in its
image is the number of earlier rows of the same image (an exclusive CumSum of a one-hot).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgepose import defaults
from edgepose.errors import ExportError
from edgepose.onnxkit.graph import default_opset
from edgepose.spec import (
    DETECTIONS_NAME,
    IOU_THR_NAME,
    MAX_DET_NAME,
    NUM_DETS_NAME,
    SCORE_THR_NAME,
    TAIL_PREFIX,
    row_width,
)

# Unsqueeze/ReduceSum with axes as an input (13); NonMaxSuppression (10/11), CumSum (11), ScatterND (11).
TAIL_MIN_OPSET = 13
NMS_PREFIX = TAIL_PREFIX + "nms/"


def check_thresholds(conf: float, iou: float, max_det: int) -> None:
    """The baked thresholds every end-to-end graph gets (our exports and imported models alike)."""
    deploy = defaults.DEPLOY
    for opt, v, example in (("--conf", conf, deploy.conf), ("--iou", iou, deploy.iou)):
        if not 0.0 <= v <= 1.0:  # NaN fails this too
            raise ExportError(f"{opt} {v} is out of range; use a value in [0, 1] (e.g. {opt} {example})")
    if max_det < 1:
        raise ExportError(
            f"--max-det {max_det} must be >= 1 ({deploy.max_det} is the default, 300 for crowded scenes)"
        )


class TailBuilder:
    """Adds prefixed nodes to a graph; every output tensor is named `prefix + name`."""

    def __init__(self, graph: onnx.GraphProto, prefix: str) -> None:
        self.graph, self.prefix = graph, prefix

    def const(self, name: str, value: np.ndarray) -> str:
        full = self.prefix + name
        self.graph.initializer.append(numpy_helper.from_array(value, full))
        return full

    def node(self, op: str, inputs: list[str], name: str, out: str | None = None, **attrs: object) -> str:
        """Append one node named `prefix + name`; its output is `out` (a graph output) or the same name."""
        full = self.prefix + name
        self.graph.node.append(helper.make_node(op, inputs, [out or full], name=full, **attrs))
        return out or full


# (builder, gathered payload rows (M, E), their candidate indices (M,)) -> name of the (M, 3K) keypoints
KptDecoder = Callable[[TailBuilder, str, str], str]
# (builder, kept rows' image indices (M,), their candidate indices (M,)) -> name of the (M, 3K) keypoints
KptGather = Callable[[TailBuilder, str, str], str]


@dataclass(frozen=True)
class _Axes:
    """The (1,) int64 axis constants the tail's Unsqueeze/Squeeze/ReduceSum/Gather nodes share."""

    ax0: str
    ax1: str
    axm1: str


def _check_tail_args(
    model: onnx.ModelProto, prefix: str, max_det: int, kpts: str | None, gather_kpts: KptGather | None
) -> None:
    if default_opset(model) < TAIL_MIN_OPSET:
        raise ExportError(
            f"the NMS tail needs opset >= {TAIL_MIN_OPSET}, the graph has {default_opset(model)}; "
            f"re-export with --opset {TAIL_MIN_OPSET} or higher ({defaults.DEFAULT_OPSET} is the default)"
        )
    if not prefix.startswith(TAIL_PREFIX):
        raise ValueError(f"tail prefix {prefix!r} must start with {TAIL_PREFIX!r}")
    if max_det < 1:
        raise ValueError(f"max_det must be >= 1, got {max_det}")
    if (kpts is None) == (gather_kpts is None):
        raise ValueError("pass exactly one of kpts (a (B, N, E) tensor) and gather_kpts")


def set_default(graph: onnx.GraphProto, name: str, value: np.ndarray, elem: int) -> None:
    """A graph input with an initializer of the same name: optional at run time, default = `value`."""
    graph.input.append(helper.make_tensor_value_info(name, elem, []))
    graph.initializer.append(numpy_helper.from_array(value, name))


def _threshold_inputs(g: onnx.GraphProto, conf: float, iou: float, max_det: int) -> None:
    """The three run-time overrides as optional graph inputs, the baked values as their initializers."""
    taken = {i.name for i in g.input} | {i.name for i in g.initializer}
    for name in (SCORE_THR_NAME, IOU_THR_NAME, MAX_DET_NAME):
        if name in taken:
            raise ExportError(f"the graph already has an input named '{name}' (already end-to-end?)")
    set_default(g, SCORE_THR_NAME, np.array(conf, np.float32), TensorProto.FLOAT)
    set_default(g, IOU_THR_NAME, np.array(iou, np.float32), TensorProto.FLOAT)
    set_default(g, MAX_DET_NAME, np.array(max_det, np.int64), TensorProto.INT64)


def _kept_rows(
    b: TailBuilder,
    ax: _Axes,
    *,
    boxes: str,
    scores: str,
    kpts: str | None,
    max_det: int,
    decode_kpts: KptDecoder | None,
    gather_kpts: KptGather | None,
) -> tuple[str, str]:
    """NonMaxSuppression and the gather of what it keeps: rows (M, 6 + 3K) and their images (M, 1)."""
    # The cap fixes the output shape, so a larger run-time request is clipped to the baked max_det.
    cap = b.node("Min", [MAX_DET_NAME, b.const("max_det_cap", np.array(max_det, np.int64))], "max_per_image")
    scores3 = b.node("Unsqueeze", [scores, ax.ax1], "scores_b1n")  # (B, 1, N): one class
    sel = b.node(
        "NonMaxSuppression", [boxes, scores3, cap, IOU_THR_NAME, SCORE_THR_NAME], "selected"
    )  # (M, 3)
    bi_box = b.node(
        "Gather", [sel, b.const("cols_batch_box", np.array([0, 2], np.int64))], "batch_box", axis=1
    )
    # (M, 1): a 1-element index list keeps the column axis
    img = b.node("Gather", [sel, b.const("col_batch", np.array([0], np.int64))], "image_index", axis=1)

    # Kept rows: box (M, 4), score (M, 1), class 0 (M, 1), keypoints (M, 3K).
    row_box = b.node("GatherND", [boxes, bi_box], "row_box")  # (M, 4)
    row_score = b.node(
        "Unsqueeze", [b.node("GatherND", [scores, bi_box], "row_score_m"), ax.axm1], "row_score"
    )  # (M, 1)
    row_cls = b.node("Mul", [row_score, b.const("zero_f", np.array(0.0, np.float32))], "row_class")  # (M, 1)

    def box_index() -> str:  # (M,)
        return b.node("Gather", [sel, b.const("col_box", np.array(2, np.int64))], "box_index", axis=1)

    if gather_kpts is not None:
        image_index = b.node("Squeeze", [img, ax.ax1], "image_index_m")  # (M,)
        row_kpt = gather_kpts(b, image_index, box_index())  # (M, 3K)
    else:
        assert kpts is not None  # _check_tail_args: exactly one of kpts and gather_kpts
        row_kpt = b.node("GatherND", [kpts, bi_box], "row_kpts")  # (M, E)
        if decode_kpts is not None:
            row_kpt = decode_kpts(b, row_kpt, box_index())  # (M, 3K)
    rows = b.node("Concat", [row_box, row_score, row_cls, row_kpt], "rows", axis=1)  # (M, 6 + 3K)
    return rows, img


def _scatter_padded(
    b: TailBuilder, ax: _Axes, *, rows: str, img: str, boxes: str, batch: int | str, max_det: int, width: int
) -> None:
    """Kept rows -> DETECTIONS_NAME (B, max_det, 6 + 3K) zero-padded, and NUM_DETS_NAME (B,)."""
    # A static batch folds the batch-dependent shapes into constants (fewer nodes at run time).
    if isinstance(batch, int):
        images = b.const("batch_range", np.arange(batch, dtype=np.int64))  # (B,)
        zeros = b.const("zeros", np.zeros((batch * max_det, width), np.float32))  # (B * max_det, 6 + 3K)
    else:
        batch_n = b.node("Gather", [b.node("Shape", [boxes], "boxes_shape"), ax.ax0], "batch_size")  # (1,)
        zero, one = b.const("zero", np.array(0, np.int64)), b.const("one", np.array(1, np.int64))
        batch_s = b.node("Squeeze", [batch_n, ax.ax0], "batch_size_scalar")
        images = b.node("Range", [zero, batch_s, one], "batch_range")  # (B,)
        n_rows = b.node("Mul", [batch_n, b.const("max_det_1", np.array([max_det], np.int64))], "out_rows")
        shape = b.node(
            "Concat", [n_rows, b.const("width_1", np.array([width], np.int64))], "zeros_shape", axis=0
        )  # (2,) = [B * max_det, 6 + 3K]
        zeros = b.node(
            "ConstantOfShape", [shape], "zeros", value=numpy_helper.from_array(np.zeros(1, np.float32))
        )
    onehot = b.node(
        "Cast", [b.node("Equal", [img, images], "onehot_bool")], "onehot", to=TensorProto.INT64
    )  # (M, B)
    # A zero row first: onnxruntime < 1.17 cannot ReduceSum over an empty axis (M = 0, a frame with
    # nobody in it), so the reduced axis always holds at least that row.
    zero_row = b.node(
        "Mul",
        [b.node("Unsqueeze", [images, ax.ax0], "images_row"), b.const("zero_i", np.array(0, np.int64))],
        "zero_row",
    )  # (1, B)
    counted = b.node("Concat", [zero_row, onehot], "onehot_padded", axis=0)  # (M + 1, B)
    b.node("ReduceSum", [counted, ax.ax0], "num_detections", out=NUM_DETS_NAME, keepdims=0)  # (B,)
    # Slot of row i within its image = number of earlier rows of the same image.
    earlier = b.node("CumSum", [onehot, b.const("zero_axis", np.array(0, np.int64))], "earlier", exclusive=1)
    slot = b.node(
        "ReduceSum", [b.node("Mul", [earlier, onehot], "earlier_same"), ax.ax1], "slot", keepdims=1
    )  # (M, 1)
    flat = b.node(
        "Add",
        [b.node("Mul", [img, b.const("max_det_i", np.array(max_det, np.int64))], "image_base"), slot],
        "flat",
    )  # (M, 1): row of (B * max_det)
    scattered = b.node("ScatterND", [zeros, flat, rows], "scattered")  # (B * max_det, 6 + 3K)
    out_shape = b.const("out_shape", np.array([-1, max_det, width], np.int64))
    b.node("Reshape", [scattered, out_shape], "detections", out=DETECTIONS_NAME)  # (B, max_det, 6 + 3K)


def copy_for_tail(model: onnx.ModelProto, batch: int | str | None) -> tuple[onnx.ModelProto, int | str]:
    """A copy of `model` to append a tail to, and its batch: `batch`, else the first graph input's (a
    number, or its symbolic name)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if batch is None:
        dim = out.graph.input[0].type.tensor_type.shape.dim[0]
        batch = dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "batch")
    return out, batch


def append_nms_tail(
    model: onnx.ModelProto,
    *,
    boxes: str,
    scores: str,
    kpts: str | None,
    num_keypoints: int,
    max_det: int,
    conf: float,
    iou: float,
    decode_kpts: KptDecoder | None = None,
    gather_kpts: KptGather | None = None,
    batch: int | str | None = None,
    prefix: str = NMS_PREFIX,
) -> onnx.ModelProto:
    """Return a copy of `model` whose outputs are replaced by the end-to-end detections.

    `boxes`/`scores`/`kpts` name tensors in the graph. `kpts` (B, N, E) is gathered for the kept rows
    only; with `decode_kpts` it may be any per-candidate payload (e.g. raw head rows) that the decoder
    turns into (M, 3K) keypoints after the gather — decoding ~100 kept rows instead of all N candidates
    is what keeps the tail cheap. `batch` is the declared first output dimension (an int for a static
    batch, a name for a dynamic one); None copies the first graph input's.

    Stages: threshold inputs -> NMS and the gather of the kept rows -> scatter into the padded output.
    """
    _check_tail_args(model, prefix, max_det, kpts, gather_kpts)
    out, batch = copy_for_tail(model, batch)
    g = out.graph
    width = row_width(num_keypoints)
    _threshold_inputs(g, conf, iou, max_det)
    del g.output[:]

    b = TailBuilder(g, prefix)
    ax = _Axes(*(b.const(n, np.array([v], np.int64)) for n, v in (("ax0", 0), ("ax1", 1), ("axm1", -1))))
    rows, img = _kept_rows(
        b,
        ax,
        boxes=boxes,
        scores=scores,
        kpts=kpts,
        max_det=max_det,
        decode_kpts=decode_kpts,
        gather_kpts=gather_kpts,
    )
    _scatter_padded(b, ax, rows=rows, img=img, boxes=boxes, batch=batch, max_det=max_det, width=width)
    g.output.extend(
        [
            helper.make_tensor_value_info(DETECTIONS_NAME, TensorProto.FLOAT, [batch, max_det, width]),
            helper.make_tensor_value_info(NUM_DETS_NAME, TensorProto.INT64, [batch]),
        ]
    )
    return out


def nms_candidates(model: onnx.ModelProto, prefix: str = NMS_PREFIX) -> tuple[str, str]:
    """The (boxes, scores) candidate tensors the NMS tail of `model` reads (to expose them for checks)."""
    by_name = {n.name: n for n in model.graph.node}
    try:
        return by_name[prefix + "row_box"].input[0], by_name[prefix + "row_score_m"].input[0]
    except KeyError as exc:
        raise ExportError("the graph has no edgepose NMS tail; export it with `edgepose export`") from exc
