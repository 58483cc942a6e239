"""Sensitivity: measured per-layer 8-bit damage, independent of layer names."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgepose.quant.calib import CalibrationSet
from edgepose.quant.graph import body_model, find_layers, load_float_model
from edgepose.quant.options import CalibMethod, LayerPrecision
from edgepose.quant.plan import PrecisionPlan
from edgepose.quant.quantize import _calibrate, _quantize
from edgepose.quant.search import order_by_sensitivity
from edgepose.quant.sensitivity import SensitivityProbe, nmse
from tests.helpers.quant_models import build_e2e_model, make_calib_dir


def _probe(model_path: Path, calib_dir: Path) -> SensitivityProbe:
    model, spec = load_float_model(model_path)
    calib = CalibrationSet(calib_dir, spec)
    body = body_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        cache = _calibrate(body, calib, CalibMethod.MINMAX, Path(tmp))
        q8 = _quantize(model, PrecisionPlan(LayerPrecision.INT8), cache, CalibMethod.MINMAX, Path(tmp), "q8")
    return SensitivityProbe(body, q8, find_layers(model), calib.subset(4), threads=1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("qsens")
    return build_e2e_model(d / "tiny.onnx"), make_calib_dir(d / "calib", n=8)


def test_nmse_numbers() -> None:
    ref = [[np.array([3.0, 4.0])], [np.array([0.0, 0.0])]]
    out = [[np.array([3.0, 5.0])], [np.array([1.0, 0.0])]]
    assert nmse(out, ref) == pytest.approx(2.0 / 25.0)
    assert nmse(ref, ref) == 0.0
    assert order_by_sensitivity([0.1, 0.3, 0.1, 0.0]) == [1, 0, 2, 3]  # ties keep graph order


def test_each_layer_has_a_measured_positive_damage(setup: tuple[Path, Path]) -> None:
    probe = _probe(*setup)
    assert probe.error([]) == 0.0  # no layer at 8 bits: exactly the float body
    scores = probe.rank()
    assert len(scores) == 7 and all(s > 1e-10 for s in scores)
    # Noise powers of independent layers roughly add: the all-8-bit error is near the sum.
    everything = probe.error(range(7))
    assert 0.4 * sum(scores) < everything < 2.5 * sum(scores)
    top = order_by_sensitivity(scores)[:2]
    assert probe.error([i for i in range(7) if i not in top]) < everything


def test_ranking_does_not_depend_on_layer_names(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model_path, calib_dir = setup
    m = onnx.load(str(model_path))
    rng = np.random.default_rng(102)
    for n in m.graph.node:  # an unseen graph: every non-tail node renamed to a random token
        if not n.name.startswith("ep_tail/"):
            n.name = f"op_{rng.integers(1 << 30):x}"
    renamed = tmp_path / "renamed.onnx"
    onnx.save(m, str(renamed))
    a, b = _probe(model_path, calib_dir).rank(), _probe(renamed, calib_dir).rank()
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert order_by_sensitivity(a) == order_by_sensitivity(b)
