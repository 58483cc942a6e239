"""The NMS-free TopK tail (issue 19) on a hand-built graph: against `topk_select`, run-time threshold and cap,
ties, padding, naming, and the one-line error for max_det > N."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepose.errors import ExportError
from edgepose.export.tail import TailBuilder
from edgepose.export.topk_tail import TOPK_PREFIX, append_topk_tail, topk_scores_input
from edgepose.spec import TAIL_PREFIX
from edgepose.topk import topk_select

N, W, MAX_DET = 12, 9, 5  # candidates, row width (6 + 3 x 1 keypoint), rows out


def graph(batch: int | str = 2, max_det: int = MAX_DET, conf: float = 0.3) -> onnx.ModelProto:
    """images (B, N) are the scores themselves; candidate n's row is n + 0.01 * column."""
    table = (np.arange(N)[:, None] + 0.01 * np.arange(W)[None, :]).astype(np.float32)  # (N, W)
    g = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["scores"], name="body")],
        "toy",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, N])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, N])],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8

    def rows(b: TailBuilder, index: str, top_scores: str) -> str:
        return b.node("Gather", ["table", index], "rows")  # (B, M, W)

    return append_topk_tail(
        model, scores="scores", num_candidates=N, gather_rows=rows, width=W, max_det=max_det, conf=conf
    )


def run(model: onnx.ModelProto, scores: np.ndarray, **feeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    det, num = sess.run(["detections", "num_detections"], {"images": scores.astype(np.float32), **feeds})
    return det, num


def test_matches_topk_select_with_threshold_cap_and_padding() -> None:
    model = graph()
    onnx.checker.check_model(model, full_check=True)
    rng = np.random.default_rng(140)
    for _ in range(20):
        scores = rng.random((2, N)).astype(np.float32)
        det, num = run(model, scores)
        assert det.shape == (2, MAX_DET, W) and num.dtype == np.int64
        for i in range(2):
            keep = topk_select(scores[i], 0.3, MAX_DET)
            assert num[i] == len(keep)
            np.testing.assert_array_equal(det[i, : num[i], 0], keep.astype(np.float32))  # row = its candidate
            assert not det[i, num[i] :].any()


def test_run_time_overrides() -> None:
    model = graph()
    scores = np.array([np.linspace(0.05, 0.95, N), np.linspace(0.95, 0.05, N)], np.float32)
    _, num = run(model, scores)
    assert num.tolist() == [5, 5]  # 8 above 0.3 each, capped at the baked 5
    _, num = run(model, scores, score_threshold=np.array(0.7, np.float32))
    assert num.tolist() == [4, 4]  # 0.705, 0.786, 0.868, 0.95
    det, num = run(model, scores, max_detections=np.array(2, np.int64))
    assert num.tolist() == [2, 2] and not det[:, 2:].any()
    _, num = run(model, scores, max_detections=np.array(50, np.int64))  # clipped to the baked shape
    assert num.tolist() == [5, 5]


def test_threshold_is_strict_and_ties_keep_the_lower_index_first() -> None:
    scores = np.zeros((2, N), np.float32)
    scores[0, [7, 2, 9]] = 0.5  # three equal scores
    scores[0, 4] = 0.3  # exactly at the threshold: dropped, as NonMaxSuppression drops it
    det, num = run(graph(), scores)
    assert num.tolist() == [3, 0] and det[0, :3, 0].tolist() == [2.0, 7.0, 9.0]
    assert topk_select(scores[0], 0.3, MAX_DET).tolist() == [2, 7, 9]


def test_dynamic_batch_and_graph_contract() -> None:
    model = graph(batch="batch")
    scores = np.random.default_rng(141).random((3, N)).astype(np.float32)
    det, num = run(model, scores)
    assert det.shape == (3, MAX_DET, W) and num.shape == (3,)
    assert [i.name for i in model.graph.input] == ["images", "score_threshold", "max_detections"]
    ops = [n.op_type for n in model.graph.node]
    assert "NonMaxSuppression" not in ops and ops.count("TopK") == 1
    assert all(n.name.startswith(TAIL_PREFIX) for n in model.graph.node[1:])
    assert topk_scores_input(model) == "scores" and TOPK_PREFIX.startswith(TAIL_PREFIX)


def test_max_det_above_the_candidates_is_one_line() -> None:
    with pytest.raises(ExportError) as info:
        graph(max_det=N + 1)
    assert str(info.value) == (
        f"--max-det {N + 1} is more than the {N} candidates the graph scores; use --max-det {N} or less "
        "(or a larger input size)"
    )
