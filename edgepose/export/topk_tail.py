"""The NMS-free tail: TopK over the scores + a gather of the kept rows, built with onnx.helper.

For graphs whose candidates need no suppression (ER-Pose's one-to-one head, end-to-end third-party
models): the end-to-end contract of `edgepose.spec` without a NonMaxSuppression node —

* TopK(scores (B, N), k = max_det, sorted) -> the best max_det scores and their candidate indices;
* a row is valid when its score is above SCORE_THR_NAME (strictly, as NonMaxSuppression) and its rank is
  below MAX_DET_NAME (capped at the baked max_det, which fixes the output shape); valid rows come first
  because TopK sorts, so NUM_DETS_NAME = the count of valid rows;
* `gather_rows` builds the kept rows (B, max_det, 6 + 3K) from the indices (only max_det rows are ever
  decoded), and the invalid ones are zeroed: DETECTIONS_NAME.

SCORE_THR_NAME and MAX_DET_NAME are graph inputs with baked defaults (initializers of the same name), as
in the NMS tail; there is no IOU_THR_NAME input (nothing is suppressed), and the runtime feeds only the
overrides a graph declares. Every node and tensor is named under `prefix` (inside spec.TAIL_PREFIX), so
quantization keeps the tail float. TopK breaks score ties by the lower index (onnxruntime's CPU kernel),
as `edgepose.topk.topk_select`, the NumPy reference, does.

Torch-free: onnx and numpy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgepose import defaults
from edgepose.errors import ExportError
from edgepose.export.tail import TAIL_MIN_OPSET, TailBuilder, copy_for_tail, set_default
from edgepose.onnxkit.graph import default_opset
from edgepose.spec import DETECTIONS_NAME, MAX_DET_NAME, NUM_DETS_NAME, SCORE_THR_NAME, TAIL_PREFIX

TOPK_PREFIX = TAIL_PREFIX + "topk/"
# (builder, kept candidate indices (B, M) int64, their scores (B, M)) -> name of the rows (B, M, 6 + 3K)
RowGather = Callable[[TailBuilder, str, str], str]


def reduce(b: TailBuilder, op: str, x: str, axes: list[int], name: str, *, keepdims: int, opset: int) -> str:
    """A Reduce* node for a graph of default opset `opset`: `axes` is an attribute below opset 18 and an
    input from 18 on (ReduceSum: from 13)."""
    if opset >= 18 or (op == "ReduceSum" and opset >= 13):
        return b.node(op, [x, b.const(name + "_axes", np.array(axes, np.int64))], name, keepdims=keepdims)
    return b.node(op, [x], name, axes=axes, keepdims=keepdims)


def append_topk_tail(
    model: onnx.ModelProto,
    *,
    scores: str,
    num_candidates: int,
    gather_rows: RowGather,
    width: int,
    max_det: int,
    conf: float,
    batch: int | str | None = None,
    prefix: str = TOPK_PREFIX,
) -> onnx.ModelProto:
    """Return a copy of `model` whose outputs are replaced by the end-to-end detections (module docstring).

    `scores` (B, N) names per-candidate probabilities in the graph; N = `num_candidates` must be >=
    max_det (TopK needs k <= N). `batch` is the declared first output dimension (None: the first graph
    input's).
    """
    opset = default_opset(model)
    if opset < TAIL_MIN_OPSET:
        raise ExportError(
            f"the detection tail needs opset >= {TAIL_MIN_OPSET}, the graph has {opset}; "
            f"re-export with --opset {TAIL_MIN_OPSET} or higher ({defaults.DEFAULT_OPSET} is the default)"
        )
    if not prefix.startswith(TAIL_PREFIX):
        raise ValueError(f"tail prefix {prefix!r} must start with {TAIL_PREFIX!r}")
    if not 1 <= max_det <= num_candidates:
        raise ExportError(
            f"--max-det {max_det} is more than the {num_candidates} candidates the graph scores; "
            f"use --max-det {num_candidates} or less (or a larger input size)"
        )
    out, batch = copy_for_tail(model, batch)
    g = out.graph
    taken = {i.name for i in g.input} | {i.name for i in g.initializer}
    for name in (SCORE_THR_NAME, MAX_DET_NAME):
        if name in taken:
            raise ExportError(f"the graph already has an input named '{name}' (already end-to-end?)")
    set_default(g, SCORE_THR_NAME, np.array(conf, np.float32), TensorProto.FLOAT)
    set_default(g, MAX_DET_NAME, np.array(max_det, np.int64), TensorProto.INT64)
    del g.output[:]

    b = TailBuilder(g, prefix)
    k = b.const("k", np.array([max_det], np.int64))
    top_scores, top_index = prefix + "top_scores", prefix + "top_index"  # (B, M) each, best first
    g.node.append(
        helper.make_node(
            "TopK", [scores, k], [top_scores, top_index], name=top_scores, axis=-1, largest=1, sorted=1
        )
    )
    cap = b.node("Min", [MAX_DET_NAME, b.const("max_det_cap", np.array(max_det, np.int64))], "max_per_image")
    in_cap = b.node("Less", [b.const("rank", np.arange(max_det, dtype=np.int64)), cap], "in_cap")  # (M,)
    above = b.node("Greater", [top_scores, SCORE_THR_NAME], "above")  # (B, M)
    valid = b.node("And", [above, in_cap], "valid")  # (B, M)
    count = b.node("Cast", [valid], "valid_i64", to=TensorProto.INT64)
    b.node(
        "ReduceSum", [count, b.const("ax1", np.array([1], np.int64))], "num", out=NUM_DETS_NAME, keepdims=0
    )
    rows = gather_rows(b, top_index, top_scores)  # (B, M, W)
    keep = b.node("Unsqueeze", [valid, b.const("axm1", np.array([-1], np.int64))], "valid_bm1")  # (B, M, 1)
    zero = b.const("zero_f", np.array(0.0, np.float32))
    b.node("Where", [keep, rows, zero], "detections", out=DETECTIONS_NAME)  # (B, M, W)
    g.output.extend(
        [
            helper.make_tensor_value_info(DETECTIONS_NAME, TensorProto.FLOAT, [batch, max_det, width]),
            helper.make_tensor_value_info(NUM_DETS_NAME, TensorProto.INT64, [batch]),
        ]
    )
    return out


def topk_scores_input(model: onnx.ModelProto, prefix: str = TOPK_PREFIX) -> str:
    """The (B, N) scores tensor the TopK tail of `model` reads (to expose it for checks)."""
    for n in model.graph.node:
        if n.name == prefix + "top_scores":
            return n.input[0]
    raise ExportError("the graph has no edgepose TopK tail; export it with `edgepose export`")
