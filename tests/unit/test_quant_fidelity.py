"""Fidelity to float: OKS matching against the float model's people, with numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper, numpy_helper

from edgepose.quant.fidelity import (
    AREA_RATIO,
    Detections,
    FidelityMeter,
    box_iou,
    fidelity,
    nmse,
    oks_matrix,
    oks_paired,
)
from edgepose.quant.graph import dequantized_initializer

SIGMAS = (0.05, 0.05, 0.1)


def _dets(
    rows: list[tuple[tuple[float, float, float, float], float, list[tuple[float, float, float]]]],
) -> Detections:
    boxes = np.array([r[0] for r in rows], np.float64).reshape(-1, 4)
    scores = np.array([r[1] for r in rows], np.float64)
    kpts = np.array([r[2] for r in rows], np.float64).reshape(-1, 3, 3)
    return Detections(boxes, scores, kpts)


PERSON = ((10.0, 20.0, 30.0, 60.0), 0.9, [(15.0, 25.0, 0.9), (20.0, 40.0, 0.8), (25.0, 55.0, 0.2)])


def _moved(dx: float, score: float = 0.9) -> tuple:
    box, _, kpts = PERSON
    return box, score, [(x + dx, y, v) for x, y, v in kpts]


def test_identical_detections_are_perfect() -> None:
    f = fidelity([_dets([PERSON])], [_dets([PERSON])], SIGMAS)
    assert (f.num_ref, f.mean_oks, f.recovered, f.score_mae, f.box_iou, f.drop) == (
        1,
        1.0,
        1.0,
        0.0,
        1.0,
        0.0,
    )


def test_oks_of_a_shift_counts_only_visible_keypoints() -> None:
    ref, cand = _dets([PERSON]), _dets([_moved(2.0)])
    s2 = 20.0 * 40.0 * AREA_RATIO
    # keypoint 3 has confidence 0.2 < 0.5: not scored
    want = np.mean([math.exp(-4.0 / (2 * s2 * (2 * 0.05) ** 2))] * 2)
    assert oks_matrix(ref, cand, SIGMAS)[0, 0] == pytest.approx(want, rel=1e-12)
    f = fidelity([ref], [cand], SIGMAS)
    assert f.mean_oks == pytest.approx(want, rel=1e-12) and f.drop == pytest.approx(1 - want, rel=1e-12)


def test_score_change_lost_people_and_deployment_threshold() -> None:
    ref = _dets([PERSON, ((100.0, 100.0, 140.0, 180.0), 0.5, [(110.0, 110.0, 1.0)] * 3)])
    # the first person scores 0.2 now (matched, OKS 1, but no longer kept at 0.25); the second is gone
    other = _dets([_moved(0.0, score=0.2)])
    f = fidelity([ref], [other], SIGMAS)
    assert f.num_ref == 2
    assert f.mean_oks == pytest.approx(0.5)  # (1 + 0) / 2
    assert f.recovered == 0.0
    assert f.score_mae == pytest.approx(0.7)
    assert f.drop == pytest.approx(1 - (1.0 * (1 - 0.7)) / 2)


def test_low_score_float_detections_are_not_references_and_empty_images_are_fine() -> None:
    weak = _dets([_moved(0.0, score=0.1)])
    f = fidelity([weak, Detections.empty(3)], [Detections.empty(3), _dets([PERSON])], SIGMAS)
    assert f.num_ref == 0 and f.mean_oks == 1.0 and f.drop == 0.0


def test_greedy_matching_in_descending_float_score() -> None:
    a = _dets([_moved(0.0, 0.6), _moved(0.5, 0.95)])  # two float people at almost the same place
    one = _dets([_moved(0.5, 0.9)])
    m = FidelityMeter(SIGMAS)
    m.add(a, one)
    f = m.result()
    # the 0.95 person (exact match) takes the only candidate; the 0.6 one is lost
    assert f.num_ref == 2 and f.mean_oks == pytest.approx(0.5)
    assert f.score_mae == pytest.approx(0.05)


def test_box_iou_numbers() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    np.testing.assert_allclose(box_iou(a, b), [[50.0 / 150.0, 0.0]])


def test_from_rows_reads_the_end_to_end_layout() -> None:
    rows = np.zeros((5, 6 + 9), np.float32)
    rows[0, :6] = [1, 2, 3, 4, 0.7, 0]
    rows[0, 6:] = np.arange(9)
    d = Detections.from_rows(rows, 1, 3)
    assert len(d) == 1 and d.scores[0] == pytest.approx(0.7)
    np.testing.assert_allclose(d.keypoints[0], np.arange(9).reshape(3, 3))


def test_paired_rows_need_no_matching() -> None:
    a = _dets([PERSON, ((100.0, 100.0, 140.0, 180.0), 0.1, [(110.0, 110.0, 1.0)] * 3)])
    b = _dets([_moved(2.0, score=0.7), ((0.0, 0.0, 1.0, 1.0), 0.9, [(0.0, 0.0, 1.0)] * 3)])
    m = FidelityMeter(SIGMAS)
    m.add_paired(a, b)  # row 1 scores 0.1 in float: not a reference, whatever the other model did there
    f = m.result()
    want = oks_matrix(_dets([PERSON]), _dets([_moved(2.0)]), SIGMAS)[0, 0]
    assert f.num_ref == 1 and f.mean_oks == pytest.approx(want) and f.score_mae == pytest.approx(0.2)
    assert f.drop == pytest.approx(1 - want * 0.8)
    with pytest.raises(ValueError, match="paired detections differ in length: 2 vs 1"):
        m.add_paired(a, _dets([PERSON]))


def test_nmse_numbers() -> None:
    ref = [[np.array([3.0, 4.0])], [np.array([0.0, 0.0])]]
    out = [[np.array([3.0, 5.0])], [np.array([1.0, 0.0])]]
    assert nmse(out, ref) == pytest.approx(2.0 / 25.0)  # (1 + 1) / 25, summed over both images
    assert nmse(ref, ref) == 0.0


@pytest.mark.parametrize("axis", [0, 1])
def test_dequantized_initializer_per_channel_and_per_tensor(axis: int) -> None:
    q = np.array([[0, 10, 20], [30, 40, 50]], np.int8)
    scale = np.array([0.5, 2.0], np.float32) if axis == 0 else np.array([0.5, 1.0, 2.0], np.float32)
    zp = np.array([1, -1], np.int8) if axis == 0 else np.array([0, 1, 2], np.int8)
    inits = [numpy_helper.from_array(a, n) for a, n in ((q, "q"), (scale, "s"), (zp, "z"))]
    dq = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["w"], axis=axis)
    model = helper.make_model(helper.make_graph([dq], "g", [], [], initializer=inits))
    shape = [-1, 1] if axis == 0 else [1, -1]
    want = (q.astype(np.float64) - zp.reshape(shape)) * scale.reshape(shape)
    np.testing.assert_allclose(dequantized_initializer(model, dq), want)
    # per-tensor: one scale, no zero point
    dq1 = helper.make_node("DequantizeLinear", ["q", "s1"], ["w"])
    m1 = helper.make_model(
        helper.make_graph(
            [dq1], "g", [], [], initializer=[inits[0], numpy_helper.from_array(np.float32(0.25), "s1")]
        )
    )
    np.testing.assert_allclose(dequantized_initializer(m1, dq1), q * 0.25)


def test_paired_oks_is_the_matrix_diagonal() -> None:
    rng = np.random.default_rng(5)
    n, k = 7, 3
    xy = rng.uniform(0, 100, (n, 1, 2))
    boxes = np.concatenate([xy[:, 0], xy[:, 0] + rng.uniform(5, 40, (n, 2))], axis=1)
    kpts = np.concatenate([xy + rng.normal(0, 5, (n, k, 2)), rng.uniform(0, 1, (n, k, 1))], axis=2)
    ref = Detections(boxes, rng.uniform(0.3, 1, n), kpts)
    moved = kpts.copy()
    moved[..., :2] += rng.normal(0, 2, (n, k, 2))
    cand = Detections(boxes, ref.scores, moved)
    np.testing.assert_allclose(oks_paired(ref, cand, SIGMAS), np.diag(oks_matrix(ref, cand, SIGMAS)))
    assert oks_paired(ref, ref, SIGMAS) == pytest.approx(np.ones(n))
