"""The NMS tail on a bare graph of candidates (no torch): onnxruntime vs the NumPy reference."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgepose.errors import ExportError
from edgepose.export.reference import reference_detections
from edgepose.export.tail import append_nms_tail
from edgepose.nms import nms
from edgepose.onnxkit.graph import tail_nodes
from edgepose.onnxkit.model import pin_ir_version
from edgepose.spec import (
    DETECTIONS_NAME,
    IOU_THR_NAME,
    MAX_DET_NAME,
    NUM_DETS_NAME,
    SCORE_THR_NAME,
    TAIL_PREFIX,
)

K = 4  # keypoints per candidate
N = 300  # candidates per image


def _candidates_graph(batch: int | str, opset: int = 17) -> onnx.ModelProto:
    """Graph inputs boxes (B, N, 4), scores (B, N), kpts (B, N, 3K) passed through Identity nodes."""
    shapes = {"boxes": [batch, N, 4], "scores": [batch, N], "kpts": [batch, N, 3 * K]}
    nodes = [helper.make_node("Identity", [n], [f"{n}_out"], name=f"id_{n}") for n in shapes]
    graph = helper.make_graph(
        nodes,
        "candidates",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in shapes.items()],
        [helper.make_tensor_value_info(f"{n}_out", TensorProto.FLOAT, s) for n, s in shapes.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _tail_model(
    batch: int | str, *, max_det: int = 50, conf: float = 0.3, iou: float = 0.5
) -> onnx.ModelProto:
    return append_nms_tail(
        _candidates_graph(batch),
        boxes="boxes_out",
        scores="scores_out",
        kpts="kpts_out",
        num_keypoints=K,
        max_det=max_det,
        conf=conf,
        iou=iou,
    )


def _tail_session(
    batch: int | str, *, max_det: int = 50, conf: float = 0.3, iou: float = 0.5
) -> ort.InferenceSession:
    model = _tail_model(batch, max_det=max_det, conf=conf, iou=iou)
    pin_ir_version(model)
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _random_candidates(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered boxes (many overlaps, so NMS suppresses), distinct scores, random keypoints."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(20, 108, (batch, 6, 2))[:, rng.integers(0, 6, N)]  # (B, N, 2)
    xy = centres + rng.normal(0, 3, (batch, N, 2))
    wh = rng.uniform(8, 40, (batch, N, 2))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], -1).astype(np.float32)  # (B, N, 4)
    scores = rng.uniform(0, 1, (batch, N)).astype(np.float32)  # (B, N)
    kpts = rng.uniform(0, 128, (batch, N, 3 * K)).astype(np.float32)  # (B, N, 3K)
    return boxes, scores, kpts


def _feed(boxes: np.ndarray, scores: np.ndarray, kpts: np.ndarray, **extra: object) -> dict[str, object]:
    return {"boxes": boxes, "scores": scores, "kpts": kpts, **extra}


def test_tail_matches_reference_per_image_with_padding() -> None:
    sess = _tail_session(3, max_det=200)
    boxes, scores, kpts = _random_candidates(3, seed=100)
    scores[1] *= 0.4  # image 1 has fewer candidates above 0.3 than the others
    det, num = sess.run(None, _feed(boxes, scores, kpts))
    want = reference_detections(boxes, scores, kpts, conf=0.3, iou=0.5, max_det=200)
    assert det.shape == (3, 200, 6 + 3 * K) and num.dtype == np.int64
    assert num.tolist() == [len(w) for w in want]
    assert 0 < num[1] < num[0]  # per-image counts differ, so the per-image slots are exercised
    assert num.max() < 200 and num.sum() < 3 * 300 * 0.7 / 2  # NMS, not the cap, decided the counts
    for b in range(3):
        np.testing.assert_array_equal(det[b, : num[b]], want[b])  # gathered copies: bit-exact
        assert not det[b, num[b] :].any()


def test_thresholds_and_cap_are_overridable_at_run_time() -> None:
    sess = _tail_session(2, max_det=50)
    boxes, scores, kpts = _random_candidates(2, seed=101)
    for conf, iou in ((0.1, 0.5), (0.6, 0.5), (0.3, 0.2), (0.3, 0.8)):
        extra = {SCORE_THR_NAME: np.array(conf, np.float32), IOU_THR_NAME: np.array(iou, np.float32)}
        det, num = sess.run(None, _feed(boxes, scores, kpts, **extra))
        want = reference_detections(boxes, scores, kpts, conf=conf, iou=iou, max_det=50)
        assert num.tolist() == [len(w) for w in want], (conf, iou)
        for b in range(2):
            np.testing.assert_array_equal(det[b, : num[b]], want[b])
    # max_detections lowers the count; a request above the baked max_det is clipped to it.
    _, num_default = sess.run(None, _feed(boxes, scores, kpts, **{SCORE_THR_NAME: np.array(0.0, np.float32)}))
    assert num_default.tolist() == [50, 50]
    for cap, expect in ((5, 5), (0, 0), (1000, 50)):
        extra = {MAX_DET_NAME: np.array(cap, np.int64), SCORE_THR_NAME: np.array(0.0, np.float32)}
        det, num = sess.run(None, _feed(boxes, scores, kpts, **extra))
        assert num.tolist() == [expect, expect]
        assert not det[:, expect:].any()


def test_no_candidate_above_threshold_gives_zero_count_and_all_zero_output() -> None:
    sess = _tail_session(2)
    boxes, scores, kpts = _random_candidates(2, seed=102)
    det, num = sess.run(None, _feed(boxes, scores * 0.2, kpts))  # all scores < 0.2 < conf 0.3
    assert num.tolist() == [0, 0]
    assert det.shape == (2, 50, 6 + 3 * K) and not det.any()


def test_dynamic_batch_tail_runs_at_any_batch_size() -> None:
    sess = _tail_session("batch")
    boxes, scores, kpts = _random_candidates(4, seed=103)
    for bs in (1, 4):
        det, num = sess.run(None, _feed(boxes[:bs], scores[:bs], kpts[:bs]))
        want = reference_detections(boxes[:bs], scores[:bs], kpts[:bs], conf=0.3, iou=0.5, max_det=50)
        assert det.shape == (bs, 50, 6 + 3 * K)
        assert num.tolist() == [len(w) for w in want]


def _tail_on(
    model: onnx.ModelProto, *, max_det: int = 10, conf: float = 0.25, iou: float = 0.45
) -> onnx.ModelProto:
    """append_nms_tail on the Identity outputs of `_candidates_graph`."""
    return append_nms_tail(
        model,
        boxes="boxes_out",
        scores="scores_out",
        kpts="kpts_out",
        num_keypoints=K,
        max_det=max_det,
        conf=conf,
        iou=iou,
    )


def test_tail_structure_names_and_default_inputs() -> None:
    model = _tail_on(_candidates_graph(1), max_det=20, conf=0.4, iou=0.6)
    tail = tail_nodes(model)
    assert len(tail) == len(model.graph.node) - 3  # everything but the 3 Identity nodes
    assert all(n.name.startswith(TAIL_PREFIX + "nms/") for n in tail)
    assert [n.op_type for n in model.graph.node].count("NonMaxSuppression") == 1
    assert [o.name for o in model.graph.output] == [DETECTIONS_NAME, NUM_DETS_NAME]
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input]
    for name, value in ((SCORE_THR_NAME, 0.4), (IOU_THR_NAME, 0.6), (MAX_DET_NAME, 20)):
        assert name in inputs
        assert inits[name].shape == () and inits[name] == pytest.approx(value)
    # Every tensor the tail adds is prefixed too, except the contract's own names.
    added = {o for n in tail for o in n.output} - {DETECTIONS_NAME, NUM_DETS_NAME}
    assert all(t.startswith(TAIL_PREFIX) for t in added)


def test_tail_rejects_low_opset_and_already_end_to_end_graphs() -> None:
    with pytest.raises(ExportError, match=r"needs opset >= 13, the graph has 12"):
        _tail_on(_candidates_graph(1, opset=12))
    once = _tail_on(_candidates_graph(1))
    with pytest.raises(ExportError, match="already has an input named 'score_threshold'"):
        _tail_on(once)


def test_reference_nms_semantics_on_hand_made_boxes() -> None:
    boxes = np.array(
        [[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 5, 9]], np.float32
    )
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.95], np.float32)
    # IoU(0, 1) = 90 / 110 = 0.818: suppressed at 0.5, kept at 0.9; box 4 has zero area: never suppresses.
    assert nms(boxes, scores, 0.5).tolist() == [4, 0, 3]
    assert nms(boxes, scores, 0.9).tolist() == [4, 0, 1, 3]
    assert nms(boxes, scores, 0.5, score_thr=0.9).tolist() == [4]  # strict: 0.9 itself is dropped
    assert nms(boxes, scores, 0.5, max_det=2).tolist() == [4, 0]


@pytest.mark.parametrize("batch", [2, "B"])
def test_count_never_reduces_an_empty_axis(batch: int | str) -> None:
    # onnxruntime < 1.17 fails a ReduceSum over an empty axis; on a frame with nobody in it the kept
    # rows are empty, so the count sums a zero row plus the kept rows (M + 1 >= 1). Checked on
    # onnxruntime 1.15.1 and 1.16.3 with scripts/check_ort_compat.py.
    model = _tail_model(batch)
    made_by = {o: n for n in model.graph.node for o in n.output}
    count = made_by[NUM_DETS_NAME]
    assert count.op_type == "ReduceSum"
    padded = made_by[count.input[0]]
    assert padded.op_type == "Concat" and made_by[padded.input[0]].op_type == "Mul"  # the zero row first
    sess = _tail_session(batch)
    b = 2
    dets, counts = sess.run(
        [DETECTIONS_NAME, NUM_DETS_NAME],
        {"boxes": np.zeros((b, N, 4), np.float32), "scores": np.zeros((b, N), np.float32),
         "kpts": np.zeros((b, N, 3 * K), np.float32)},
    )  # fmt: skip
    assert counts.shape == (b,) and counts.tolist() == [0, 0] and not dets.any()
