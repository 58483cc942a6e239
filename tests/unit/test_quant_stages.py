"""The 8-bit stages on tiny onnx.helper graphs: ranges, equalization, rounding, bias correction, the path."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepose.quant import biascorr, equalize, ranges, rounding, twin
from edgepose.quant.calib import CalibrationSet
from edgepose.quant.graph import body_model, find_layers, load_float_model
from edgepose.quant.optimize import OptimizationLog, StepRecord, choose_prefix
from edgepose.quant.options import CalibMethod, LayerPrecision
from edgepose.quant.ortsteps import calibrate, quantize_with
from edgepose.quant.plan import PrecisionPlan
from edgepose.spec import INPUT_NAME
from tests.helpers.quant_graphs import build_pose_model, make_images


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("qstages")
    return build_pose_model(d / "pose.onnx"), make_images(d / "calib")


def _run(model: onnx.ModelProto, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names if n not in have
    )
    so = ort.SessionOptions()
    so.log_severity_level = 4
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(
        names, {INPUT_NAME: x}
    )


# --- ranges ------------------------------------------------------------
def test_tighten_clips_only_saturating_sides(tiny: tuple[Path, Path]) -> None:
    model, _ = load_float_model(tiny[0])
    r = {"c1_out": (-30.0, 12.0), "c2_out": (-7.0, 9.0), "a1": (-0.28, 12.0)}
    out, changes = ranges.tighten(r, model.graph)
    assert out["c1_out"] == (-5.0, 12.0)  # read by Sigmoid and Mul(x, Sigmoid(x)): the low side saturates
    assert out["c2_out"] == (-7.0, 9.0)  # read by Relu: left alone (onnxruntime folds it)
    assert out["a1"] == (-0.28, 12.0)  # read by a Conv
    assert [c.tensor for c in changes] == ["c1_out"]
    assert changes[0].step_ratio == pytest.approx(42.0 / 17.0)


def test_sigmoid_only_reader_clips_both_sides_and_cache_roundtrip(tmp_path: Path) -> None:
    g = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["y"], name="s")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    out, _ = ranges.tighten({"x": (-20.0, 30.0)}, g, saturation=6.0)
    assert out["x"] == (-6.0, 6.0)
    ranges.save_ranges(out, tmp_path / "c.json")
    assert ranges.load_ranges(tmp_path / "c.json") == {"x": (-6.0, 6.0)}


@pytest.mark.parametrize("method", [CalibMethod.PERCENTILE, CalibMethod.ENTROPY])
def test_tight_ranges_keep_the_calibration_method(
    method: CalibMethod, tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    """The tightened cache must say the method it was calibrated with: onnxruntime 1.32's quantize_static
    refuses a cache recorded under another method (`quantize --method percentile` crashed on it)."""
    from edgepose.quant.optimize import Options
    from edgepose.quant.quantize import quantize_model
    from edgepose.spec import Precision

    rep = quantize_model(tiny[0], tiny[1], tmp_path / "q.onnx", precision=Precision.INT8, method=method,
                         threads=1, options=Options(ranges=True, equalize=False, rounding=False,
                                                    biascorr=False))  # fmt: skip
    assert (tmp_path / "q.onnx").is_file() and rep.method is method
    assert [(s["stage"], s["kept"]) for s in rep.optimizations] == [("ranges", True)]


def test_with_headroom_stretches_each_nonzero_side_away_from_zero() -> None:
    assert ranges.HEADROOM_16BIT == 2.0
    assert ranges.with_headroom(-1.5, 3.0) == (-3.0, 6.0)
    assert ranges.with_headroom(0.0, 1.0) == (0.0, 2.0)  # a Sigmoid's 0 stays
    assert ranges.with_headroom(0.25, 4.0) == (0.25, 8.0)  # an all-positive range keeps its low end
    assert ranges.with_headroom(-4.0, -1.0) == (-8.0, -1.0)
    assert ranges.widened({"a": (-1.0, 2.0), "b": (0.0, 0.5)}, 3.0) == {"a": (-3.0, 6.0), "b": (0.0, 1.5)}
    assert ranges.widened({"a": (-1.0, 2.0), "b": (0.0, 0.5)}, only={"b"}) == {
        "a": (-1.0, 2.0),
        "b": (0.0, 1.0),
    }


def test_int16_keeps_values_beyond_the_calibrated_range(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    """A value past the calibration's min/max is clipped at any bit width: 16-bit ranges get headroom, so
    frames 1.3x brighter than every calibration image still give what float gives."""
    from edgepose.quant.fidelity import nmse
    from edgepose.quant.ortsteps import raw_outputs

    model, spec = load_float_model(tiny[0])
    calib = CalibrationSet(tiny[1], spec)
    body = body_model(model)
    cache = calibrate(body, calib, CalibMethod.MINMAX, tmp_path)
    int16 = PrecisionPlan(LayerPrecision.INT16)
    q = quantize_with(model, int16, cache, CalibMethod.MINMAX, tmp_path, "q16")
    cal = ranges.load_ranges(cache)
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    checked = 0
    for n in q.graph.node:  # every activation's 16-bit scale spans its calibrated range doubled
        if n.op_type == "QuantizeLinear" and n.input[0] in cal and n.input[1] in inits:
            lo, hi = ranges.with_headroom(*cal[n.input[0]])
            np.testing.assert_allclose(float(inits[n.input[1]]), (max(hi, 0) - min(lo, 0)) / 65535, rtol=1e-4)
            checked += 1
    assert checked == 6  # the input and the five activation tensors of the tiny model
    # the same model quantized at exactly the calibrated ranges (the cache halved, then doubled)
    half = tmp_path / "half.json"
    ranges.save_ranges(ranges.widened(cal, 0.5), half, like=cache)
    q_calibrated = quantize_with(model, int16, half, CalibMethod.MINMAX, tmp_path, "q16c")
    names = [o.name for o in body.graph.output]
    bright = [x * np.float32(1.3) for x in calib.subset(4)]
    ref = raw_outputs(body, bright, 1)
    assert nmse(raw_outputs(q, bright, 1, names), ref) < 1e-6
    assert nmse(raw_outputs(q_calibrated, bright, 1, names), ref) > 1e-3  # clipped
    usual = calib.subset(4)  # and on frames like the calibration's, headroom costs nothing visible
    assert nmse(raw_outputs(q, usual, 1, names), raw_outputs(body, usual, 1)) < 1e-6


def test_mixed_16_bit_ranges_get_onnxruntimes_adjustments_like_int16(tmp_path: Path) -> None:
    """A promoted layer's 16-bit inputs get headroom through the cache, so onnxruntime still adjusts them as
    it does in the all-16-bit model: a Softmax output is quantized over [0, 1], not over its calibrated range
    doubled; the 8-bit tensors keep their calibrated ranges."""
    path = build_pose_model(tmp_path / "softmax.onnx", act3="Softmax")
    model, spec = load_float_model(path)
    cache = calibrate(
        body_model(model), CalibrationSet(make_images(tmp_path / "c"), spec), CalibMethod.MINMAX, tmp_path
    )
    cal = ranges.load_ranges(cache)
    # the calibrated Softmax range lies inside [0, 1]: doubled, it would reach past 1
    assert cal["r3"][0] >= 0.0 and cal["r3"][1] < 1.0

    def qparams(q: onnx.ModelProto) -> dict[str, tuple[float, int, int]]:
        inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
        return {
            n.input[0]: (float(inits[n.input[1]]), int(inits[n.input[2]]), inits[n.input[2]].dtype.itemsize)
            for n in q.graph.node
            if n.op_type == "QuantizeLinear" and n.input[1] in inits and inits[n.input[1]].ndim == 0
        }

    mixed = PrecisionPlan(LayerPrecision.INT8, {"head": LayerPrecision.INT16})
    qm = qparams(quantize_with(model, mixed, cache, CalibMethod.MINMAX, tmp_path, "mix"))
    q16 = qparams(
        quantize_with(model, PrecisionPlan(LayerPrecision.INT16), cache, CalibMethod.MINMAX, tmp_path, "q16")
    )
    assert qm["r3"] == q16["r3"] == (pytest.approx(1 / 65535, rel=1e-6), 0, 2)  # onnxruntime's [0, 1]
    lo, hi = ranges.with_headroom(*cal["c3_out"])  # the Softmax input: 16 bits, with headroom
    assert qm["c3_out"] == q16["c3_out"] == (pytest.approx((hi - lo) / 65535, rel=1e-5), qm["c3_out"][1], 2)
    scale8, _, size8 = qm["r2"]  # c3 stays 8-bit: what it reads keeps its calibrated range
    assert size8 == 1 and scale8 == pytest.approx((cal["r2"][1] - min(cal["r2"][0], 0)) / 255, rel=1e-5)


# --- equalization ------------------------------------------------------------
def test_equalization_keeps_the_function_and_balances_ranges(tiny: tuple[Path, Path]) -> None:
    model, _ = load_float_model(tiny[0])
    pairs = equalize.find_pairs(model)
    assert [(p.first, p.second) for p in pairs] == [("c2", "c3"), ("c3", "head")]  # c1 -> SiLU: not a pair
    eq, done = equalize.equalize(model)
    assert len(done) == 2
    x = np.random.default_rng(122).random((1, 3, 32, 32), dtype=np.float32)
    a, b = _run(model, x, ["head_out"]), _run(eq, x, ["head_out"])
    np.testing.assert_allclose(a[0], b[0], rtol=1e-4, atol=1e-4)
    w = {t.name: numpy_helper.to_array(t) for t in eq.graph.initializer}
    w0 = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    # for the second pair: output ranges of c3 and input ranges of head end up equal (sqrt(r1 r2))
    r1 = np.abs(w["c3.w"]).reshape(8, -1).max(1)
    r2 = np.abs(w["head.w"]).transpose(1, 0, 2, 3).reshape(8, -1).max(1)
    np.testing.assert_allclose(r1, r2, rtol=1e-4)
    assert np.ptp(np.abs(w0["c3.w"]).max(axis=(0, 2, 3))) > 5 * np.ptp(np.abs(w["c3.w"]).max(axis=(0, 2, 3)))


# --- rounding ------------------------------------------------------------
def _correlated_layer(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) of a 6 x 24 layer whose inputs are correlated: rounding errors can compensate each other."""
    x = rng.normal(size=(2000, 24))
    x[:, 1:] += 0.8 * x[:, :-1]
    return x.T @ x, rng.normal(size=(6, 24))


def test_round_rows_beats_nearest_keeps_the_anchor_and_is_nearest_for_independent_inputs() -> None:
    rng = np.random.default_rng(123)
    h, w = _correlated_layer(rng)
    q = rounding.round_rows(w, h)
    s = np.abs(w).max(1, keepdims=True) / 127
    err = lambda wq: np.einsum("rd,de,re->", w - wq, h, w - wq)  # noqa: E731
    assert err(q * s) < 0.95 * err(np.rint(w / s) * s)
    assert np.array_equal(np.abs(q).max(1), np.full(6, 127.0)) and np.all(q == np.rint(q))
    anchor = np.argmax(np.abs(w), 1)
    assert np.array_equal(q[np.arange(6), anchor], 127 * np.sign(w[np.arange(6), anchor]))
    np.testing.assert_array_equal(
        rounding.round_rows(w, np.diag(np.arange(1.0, 25.0)), damp=0.0), np.rint(w / s)
    )


def test_sample_patches_reproduce_the_convolution() -> None:
    rng = np.random.default_rng(124)
    x = rng.normal(size=(1, 3, 9, 7)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])
    geo = rounding.conv_geometry(node, w.shape)
    assert geo is not None and geo.strides == (2, 2)
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    y = ort.InferenceSession(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
        providers=["CPUExecutionProvider"],
    ).run(None, {"x": x})[0]
    p = rounding.sample_patches(x, geo, 1000, np.random.default_rng(0))  # (P, 3, 3, 3): all 5 x 4 positions
    assert p.shape == (20, 3, 3, 3)
    got = np.sort((p.reshape(20, -1) @ w.reshape(4, -1).T).ravel())
    np.testing.assert_allclose(got, np.sort(y.ravel()), rtol=1e-5, atol=1e-5)


def _int8(model: onnx.ModelProto, calib: CalibrationSet, tmp: Path, tag: str) -> onnx.ModelProto:
    cache = calibrate(body_model(model), calib, CalibMethod.MINMAX, tmp)
    return quantize_with(model, PrecisionPlan(LayerPrecision.INT8), cache, CalibMethod.MINMAX, tmp, tag)


def test_fitted_weights_survive_onnxruntime_quantization_exactly(tiny: tuple[Path, Path]) -> None:
    model, spec = load_float_model(tiny[0])
    layers = find_layers(model)
    calib = CalibrationSet(tiny[1], spec)
    with tempfile.TemporaryDirectory() as tmp:
        stats = rounding.input_moments(
            _int8(model, calib, Path(tmp), "p"), body_model(model), layers, calib.subset(4), threads=1
        )
        fitted, rep = rounding.fit_rounding(model, layers, stats)
        assert set(rep.layers) == {la.name for la in layers} and 0 < rep.gain < 1
        q = _int8(fitted, calib, Path(tmp), "r")
    qi = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    fi = {t.name: numpy_helper.to_array(t) for t in fitted.graph.initializer}
    for la in layers:
        w = fi[la.weight].reshape(fi[la.weight].shape[0], -1)
        s = np.abs(w).max(1, keepdims=True) / 127
        np.testing.assert_array_equal(qi[la.weight + "_quantized"].reshape(w.shape), np.rint(w / s))
        np.testing.assert_allclose(w / s, np.rint(w / s), atol=1e-3)  # on the grid before quantizing


def test_group_stats_error_and_target() -> None:
    rng = np.random.default_rng(125)
    xt = rng.normal(size=(3000, 12))
    xq = np.clip(xt, -0.8, None) + rng.normal(0, 0.02, xt.shape)  # an 8-bit input: clipped tail, noise
    w = rng.normal(size=(5, 12))
    st = rounding.GroupStats(xq.T @ xq, xq.T @ xt, float(np.sum((xt @ w.T) ** 2)))
    wq = w + rng.normal(0, 0.05, w.shape)
    np.testing.assert_allclose(st.error(w, wq), np.sum((xt @ w.T - xq @ wq.T) ** 2), rtol=1e-9)
    best = st.target(w, ridge=0.0)
    np.testing.assert_allclose(best, np.linalg.lstsq(xq, xt @ w.T, rcond=None)[0].T, rtol=1e-6, atol=1e-9)
    # the least-squares weights recover part of the clipped tail; the ridge keeps most of that gain
    assert st.error(w, best) <= st.error(w, st.target(w)) < 0.9 * st.error(w, w)
    same = rounding.GroupStats(xt.T @ xt, xt.T @ xt)
    np.testing.assert_allclose(same.target(w), w, atol=1e-12)  # exact inputs: nothing to correct


def test_round_rows_approaches_a_target_on_the_weights_grid() -> None:
    rng = np.random.default_rng(126)
    h, w = _correlated_layer(rng)
    t = w + rng.normal(0, 0.02, w.shape)
    s = np.abs(w).max(1, keepdims=True) / 127
    q = rounding.round_rows(w, h, target=t)
    rows, anchor = np.arange(6), np.argmax(np.abs(w), 1)
    assert np.array_equal(q[rows, anchor], 127 * np.sign(w[rows, anchor]))  # w's grid, whatever t says
    near = np.clip(np.rint(t / s), -127, 127)
    near[rows, anchor] = q[rows, anchor]  # nearest rounding of t on the same grid
    err = lambda wq: np.einsum("rd,de,re->", t - wq, h, t - wq)  # noqa: E731
    assert err(q * s) < 0.9 * err(near * s)


def test_rounding_fitted_to_8bit_inputs_lowers_unseen_output_error(tiny: tuple[Path, Path]) -> None:
    """Two conv inputs clipped by their 8-bit ranges (half the calibrated width, as a percentile or entropy
    calibration clips tails): on images it was not fitted on, rounding fitted to the 8-bit inputs leaves
    the layers' outputs far nearer the float layers than nearest rounding or rounding fitted as if the
    inputs were exact (which cannot see the clipping)."""
    model, spec = load_float_model(tiny[0])
    layers = find_layers(model)
    calib = CalibrationSet(tiny[1], spec)
    images = calib.subset(len(calib))
    body = body_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        cache = calibrate(body, calib, CalibMethod.MINMAX, Path(tmp))
        r = ranges.load_ranges(cache)
        for t in ("a1", "r2"):  # the inputs of c2 (a SiLU output) and c3 (a ReLU output)
            r[t] = (r[t][0] / 2, r[t][1] / 2)
        tight = Path(tmp) / "tight.json"
        ranges.save_ranges(r, tight, like=cache)
        q = quantize_with(
            model, PrecisionPlan(LayerPrecision.INT8), tight, CalibMethod.MINMAX, Path(tmp), "t"
        )
    fit_on = rounding.input_moments(q, body, layers, images[::2], threads=1)
    unseen = rounding.input_moments(q, body, layers, images[1::2], threads=1, seed=1)
    w = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    totals = {"nearest": 0.0, "exact inputs": 0.0, "8-bit inputs": 0.0}
    for la in layers:
        flat = w[la.weight].reshape(w[la.weight].shape[0], -1)
        s = np.abs(flat).max(1, keepdims=True) / 127
        (st,), (ev,) = fit_on[la.name], unseen[la.name]
        totals["nearest"] += ev.error(flat, np.rint(flat / s) * s)
        totals["exact inputs"] += ev.error(flat, rounding.round_rows(flat, st.h) * s)
        totals["8-bit inputs"] += ev.error(flat, rounding.round_rows(flat, st.h, target=st.target(flat)) * s)
    assert totals["8-bit inputs"] < 0.5 * min(totals["nearest"], totals["exact inputs"]), totals


# --- bias correction ------------------------------------------------------------
def test_bias_correction_removes_the_local_mean_error(tiny: tuple[Path, Path]) -> None:
    model, spec = load_float_model(tiny[0])
    layers = find_layers(model)
    calib = CalibrationSet(tiny[1], spec)
    images = calib.subset(8)
    body = body_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        cache = calibrate(body, calib, CalibMethod.MINMAX, Path(tmp))
        q = quantize_with(
            model, PrecisionPlan(LayerPrecision.INT8), cache, CalibMethod.MINMAX, Path(tmp), "a"
        )
        tw, pairs = twin.twin_model(q, body, layers)
        # onnxruntime folds each ReLU into its conv's Q range and names the conv's output after it
        assert [p[0] for p in pairs] == ["c1_out", "r2", "r3", "head_out"]
        assert [p[1] for p in pairs] == [twin.TWIN + t for t in ("c1_out", "c2_out", "c3_out", "head_out")]
        err = biascorr.local_errors(q, body, layers, images, threads=1)
        fixed, bc = biascorr.apply_bias_correction(model, layers, err)
        q2 = quantize_with(
            fixed, PrecisionPlan(LayerPrecision.INT8), cache, CalibMethod.MINMAX, Path(tmp), "b"
        )
        after = biascorr.local_errors(q2, body, layers, images, threads=1)
    assert set(bc.errors) == {la.name for la in layers}
    before = np.mean([np.abs(e).mean() for e in err.values()])
    assert np.mean([np.abs(e).mean() for e in after.values()]) < 0.3 * before
    b0 = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}["c1.b"]
    b1 = {t.name: numpy_helper.to_array(t) for t in fixed.graph.initializer}["c1.b"]
    np.testing.assert_allclose(b1, b0 - err["c1"], rtol=1e-5, atol=1e-6)
    # the twin's float layer reading the quantized model's tensors reproduces the float model exactly for c1
    x = images[0]
    t1 = _run(tw, x, [twin.TWIN + "c1_out"])[0]
    np.testing.assert_allclose(t1, _run(body, x, ["c1_out"])[0], rtol=1e-5, atol=1e-5)


# --- choose_prefix --------------------------------------------------------


def test_choose_prefix_keeps_the_best_path_prefix() -> None:
    # YOLO11n-pose, the second split: each stage alone little better, the path much better
    assert choose_prefix([0.0924, 0.0886, 0.0786, 0.0589], [False] * 3) == 3
    # the shipped edgepose-n: rounding 2.8% better than nothing, within the 5% noise: keep nothing
    assert choose_prefix([0.0462, 0.0462, 0.0449, 0.0455], [False] * 3) == 0
    assert choose_prefix([0.1, 0.05, 0.0495, 0.2], [False] * 3) == 1  # the shortest within 5% of the best
    assert choose_prefix([0.1, 0.05, 0.0495, 0.2], [False, False, True]) == 3  # forced: kept whatever
    assert choose_prefix([0.1], []) == 0
    log = OptimizationLog()
    log.steps.append(StepRecord("ranges", True, 0.1, 0.05, 1.0, "d", ["L1"]))
    log.steps.append(StepRecord("rounding", False, 0.05, 0.06, 1.0, "d", ["L2"]))
    assert log.kept() == ["ranges"] and log.per_layer() == {"L1": ["ranges"]}
    assert "dropped" in log.steps[1].describe() and "0.0500 -> 0.0600" in log.steps[1].describe()
