"""Import an already NMS-free (end-to-end) Ultralytics pose ONNX, YOLO26-pose style, into the contract.

The layout, as Ultralytics documents it (docs "End-to-end detection" guide: pose output (N, 300, 57),
17 keypoints x (x, y, visibility)) and writes it (`ultralytics/nn/modules/head.py`: `Detect.postprocess` /
`Pose.postprocess` after the one-to-one head, `get_topk_index`): one output (B, N, 6 + 3K), N = the
exporter's max_det (300 by default), each row

    x1, y1, x2, y2 (input pixels), score (post-sigmoid), class index (float), K x (x, y, visibility)

with keypoints decoded to input pixels and the visibility post-sigmoid, rows sorted by score and **no
score threshold applied** (every row is filled; "confidence threshold only" is the documented
post-processing). So there is nothing to suppress: wrapping it needs a score threshold, a cap and the
count — the TopK tail of `edgepose.export.topk_tail` over the rows' scores, which also keeps the order
right should an exporter not sort. Rows pass through unchanged (a Sigmoid is applied only where a
channel holds logits: a score outside [0, 1], or visibility given or found to be logits); the class
column is kept as the source wrote it (0 for a one-class pose model).

Torch-free (onnx, onnxruntime, numpy). Every added node is named under E2E_PREFIX (inside
spec.TAIL_PREFIX), so quantization keeps it float.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgepose.errors import ExportError, ModelFileError
from edgepose.export.importer.graph import IMPORT_PREFIX
from edgepose.export.importer.layout import PoseLayout, fmt_shape
from edgepose.export.importer.options import KptConf
from edgepose.export.importer.verify import ImportCheck, check_against
from edgepose.export.tail import TailBuilder
from edgepose.export.topk_tail import append_topk_tail
from edgepose.spec import PoseSpec
from edgepose.topk import topk_select

E2E_PREFIX = IMPORT_PREFIX + "e2e/"
E2E_EXPECTED = "(B, N, 6 + 3K) rows x1, y1, x2, y2, score, class, K x (x, y, visibility)"
MIN_ROWS = 100  # exporters cap detections at 100 or 300; a raw (B, C, N) output has C < 100 channels
SEG_COEFFS = 32  # Ultralytics segmentation rows carry 32 mask coefficients after the 6 box/score/class values


def looks_end2end(shape: tuple[int, ...] | list[int | str]) -> bool:
    """A 3-D output of many short rows (N >= MIN_ROWS rows of 6..N-1 values): already post-processed."""
    if len(shape) != 3 or not all(isinstance(d, int) for d in shape[1:]):
        return False
    n, c = int(shape[1]), int(shape[2])
    return n >= MIN_ROWS and 6 <= c < n


def classify_end2end(raw: np.ndarray, kpt_conf: KptConf, src: str) -> PoseLayout:
    """K and the score/visibility conventions of an end-to-end output (B, N, C), or a one-line error
    naming the shape found."""
    shape = fmt_shape(raw.shape)
    c = raw.shape[2]
    if c == 6:
        kind = "a detection-only end-to-end model (x1, y1, x2, y2, score, class; no keypoints)"
    elif c == 7:
        kind = "an oriented-box (OBB) end-to-end model (6 + 1 angle)"
    elif c == 6 + SEG_COEFFS:
        kind = f"a segmentation end-to-end model (6 + {SEG_COEFFS} mask coefficients)"
    elif (c - 6) % 3:
        kind = f"an end-to-end output whose {c - 6} values after the first 6 are not K x (x, y, visibility)"
    else:
        kind = ""
    if kind:
        raise ModelFileError(
            f"{src}: output {shape} looks like {kind}; expected a pose output {E2E_EXPECTED}"
        )
    k = (c - 6) // 3
    notes: list[str] = []
    score_prob = bool(((raw[..., 4] >= 0) & (raw[..., 4] <= 1)).all())
    if not score_prob:
        notes.append("score column holds logits (values outside [0, 1]); a Sigmoid is applied")
    vis = raw[..., 8::3]  # (B, N, K)
    outside = bool(((vis < 0) | (vis > 1)).any())
    if kpt_conf is KptConf.AUTO:
        resolved = KptConf.LOGIT if outside else KptConf.PROB
        reason = (
            "auto: visibility values outside [0, 1]"
            if outside
            else "auto: visibility values within [0, 1] (Ultralytics end-to-end exports apply the Sigmoid)"
        )
    else:
        resolved, reason = kpt_conf, f"given: --kpt-conf {kpt_conf.value}"
        if kpt_conf is KptConf.PROB and outside:
            notes.append("--kpt-conf prob, but visibility values fall outside [0, 1]: they look like logits")
    return PoseLayout(k, score_prob, resolved, reason, tuple(notes))


def _sigmoid_columns(lay: PoseLayout, width: int) -> np.ndarray:
    """(C,) bool: the columns the wrapper squashes (a logit score, logit visibilities)."""
    cols = np.zeros(width, bool)
    cols[4] = not lay.score_prob
    if lay.kpt_conf is KptConf.LOGIT:
        cols[8::3] = True
    return cols


def wrap_end2end(
    model: onnx.ModelProto,
    raw: str,
    raw_shape: tuple[int, int, int],
    lay: PoseLayout,
    *,
    conf: float,
    max_det: int,
) -> onnx.ModelProto:
    """`model` with output `raw` (B, N, 6 + 3K) -> + scores, TopK tail, row gather (module docstring)."""
    _, n, c = raw_shape
    if max_det > n:
        raise ExportError(
            f"--max-det {max_det} is more than the {n} rows the end-to-end source outputs; use --max-det {n} "
            "or less (or re-export the source with a larger max_det)"
        )
    b = TailBuilder(model.graph, E2E_PREFIX)
    scores = b.node(
        "Gather", [raw, b.const("col_score", np.array(4, np.int64))], "score_raw", axis=2
    )  # (B, N)
    if not lay.score_prob:
        scores = b.node("Sigmoid", [scores], "scores")
    squash = _sigmoid_columns(lay, c)

    def gather_rows(topk: TailBuilder, index: str, top_scores: str) -> str:
        b = TailBuilder(topk.graph, E2E_PREFIX + "rows/")  # the tail's copy of the graph, not `model`'s
        idx = b.node(
            "Unsqueeze", [index, b.const("axm1", np.array([-1], np.int64))], "index_bm1"
        )  # (B, M, 1)
        idx = b.node(
            "Expand", [idx, b.const("row_shape", np.array([1, 1, c], np.int64))], "index_bmc"
        )  # (B, M, C)
        rows = b.node("GatherElements", [raw, idx], "rows_raw", axis=1)  # (B, M, C)
        if squash.any():
            sig = b.node("Sigmoid", [rows], "rows_sigmoid")
            rows = b.node("Where", [b.const("squash_cols", squash), sig, rows], "rows")  # (B, M, C)
        return rows

    return append_topk_tail(
        model, scores=scores, num_candidates=n, gather_rows=gather_rows, width=c, max_det=max_det, conf=conf
    )


def reference_rows(raw: np.ndarray, lay: PoseLayout, *, conf: float, max_det: int) -> list[np.ndarray]:
    """NumPy reference of the wrapped graph: per image the kept rows (n_b, 6 + 3K), best first."""
    x = np.asarray(raw, np.float32).copy()  # (B, N, C)
    cols = _sigmoid_columns(lay, x.shape[2])
    x[..., cols] = (1.0 / (1.0 + np.exp(-np.clip(x[..., cols].astype(np.float64), -80, 80)))).astype(
        np.float32
    )
    return [x[i, topk_select(x[i, :, 4], conf, max_det)] for i in range(x.shape[0])]


def verify_end2end(
    graph: onnx.ModelProto, raw_name: str, spec: PoseSpec, lay: PoseLayout, batch: int
) -> ImportCheck:
    """An end-to-end source wrapped with the top-k tail vs `reference_rows` of its own raw output."""

    def reference(raw: np.ndarray, thr: float) -> list[np.ndarray]:
        return reference_rows(raw, lay, conf=thr, max_det=spec.max_det)

    return check_against(graph, raw_name, spec, batch, reference)
