"""Bench fidelity columns: each quantized row compared with its float row, in either order given."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgepose.bench.run import run_bench
from edgepose.data.coco import read_coco
from edgepose.quant.fidelity import AREA_RATIO
from edgepose.spec import COCO_SIGMAS, PoseSpec, Precision
from tests.helpers.runtime_onnx import build_model, int8_of

SIZE = 128


def _rows(val: Path, shift: float) -> np.ndarray:
    rec = read_coco(val / "annotations.json").records[0]
    n = rec.num_people
    kpts = rec.keypoints.copy()  # (N, K, 3)
    kpts[..., 0] += shift
    kpts[..., 2] = 1.0
    score = np.full((n, 1), 0.9, np.float32)
    return np.concatenate([rec.boxes, score, np.zeros((n, 1), np.float32), kpts.reshape(n, -1)], axis=1)


@pytest.fixture(scope="module")
def setup(synth_dataset_factory: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> tuple:
    val = synth_dataset_factory(num_images=1, size=SIZE, seed=102)
    d = tmp_path_factory.mktemp("fid")
    spec = PoseSpec(name="oracle", input_size=(SIZE, SIZE), max_det=20, version="test")
    exact = build_model(d / "exact.onnx", spec, _rows(val, 0.0))
    moved = int8_of(exact, d / "moved.onnx", spec, _rows(val, 2.0))
    return val, exact, moved


def _expected_oks(val: Path, shift: float) -> np.ndarray:
    """Per person, the OKS of the shifted keypoints (all visible)."""
    rec = read_coco(val / "annotations.json").records[0]
    wh = rec.boxes[:, 2:] - rec.boxes[:, :2]
    s2 = wh[:, 0] * wh[:, 1] * AREA_RATIO  # (N,)
    k2 = (2 * np.array(COCO_SIGMAS)) ** 2  # (K,)
    return np.mean(np.exp(-(shift**2) / (2 * s2[:, None] * k2[None, :])), axis=1)


def test_fidelity_of_the_moved_model_in_either_order(setup: tuple, tmp_path: Path) -> None:
    val, exact, moved = setup
    per_person = _expected_oks(val, 2.0)
    want, kept = float(per_person.mean()), float(np.mean(per_person >= 0.5))
    assert 0.0 < kept < 1.0  # the smallest person is lost at OKS 0.5: both figures are exercised
    for order in ([exact, moved], [moved, exact]):
        res = run_bench(order, val, threads=1, runs=2, warmup=0)
        by = {r.variant: r for r in res.rows}
        assert [r.model for r in res.rows] == [str(p) for p in order]  # the table keeps the given order
        f, q = by[Precision.FLOAT], by[Precision.INT8]
        assert f.fidelity_oks is None and f.fidelity_refs is None  # the reference itself
        assert q.fidelity_refs == 4
        assert q.fidelity_oks == pytest.approx(want, rel=1e-5)
        assert q.fidelity_recovered == pytest.approx(kept)
        assert q.fidelity_score_mae == pytest.approx(0, abs=1e-6)
        cells = q.cells()
        assert f"{want:.3f}" in cells and f"{100 * kept:.1f}" in cells
