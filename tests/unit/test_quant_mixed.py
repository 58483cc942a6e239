"""Task-aware mixed precision on tiny onnx.helper graphs: the probe, the search, float islands, the cache."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepose.bench.kernels import count_kernels, optimized_kernels, read_nodes
from edgepose.quant import probecache
from edgepose.quant.calib import CalibrationSet
from edgepose.quant.fidelity import Fidelity
from edgepose.quant.graph import body_model, chain_tensors, find_layers, float_nodes, load_float_model
from edgepose.quant.islands import guard_weight_requantization, island_nodes
from edgepose.quant.options import CalibMethod, HighPrecision, LayerPrecision
from edgepose.quant.ortsteps import calibrate, quantize_with
from edgepose.quant.plan import PrecisionPlan
from edgepose.quant.quantize import quantize_model
from edgepose.quant.taskplan import layer_macs, order_layers, predict, search, unfused_by
from edgepose.quant.taskprobe import TaskProbe, pick_probe_images
from edgepose.spec import TAIL_PREFIX, Precision
from tests.helpers.quant_graphs import CH, build_pose_model, make_images

ALL8 = PrecisionPlan(LayerPrecision.INT8)
MINMAX = CalibMethod.MINMAX


def _all8(model: onnx.ModelProto, calib: CalibrationSet) -> onnx.ModelProto:
    """onnxruntime's all 8-bit model of `model` (min-max ranges)."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = calibrate(body_model(model), calib, MINMAX, Path(tmp))
        return quantize_with(model, ALL8, cache, MINMAX, Path(tmp), "q8")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("qmixed")
    path, calib_dir = build_pose_model(d / "pose.onnx"), make_images(d / "calib")
    model, spec = load_float_model(path)
    calib = CalibrationSet(calib_dir, spec)
    q8 = _all8(model, calib)
    return {
        "dir": d,
        "path": path,
        "calib": calib_dir,
        "model": model,
        "spec": spec,
        "q8": q8,
        "images": calib.subset(4),
        "layers": find_layers(model),
        "tail": {n.name for n in float_nodes(model)},
    }


def test_chain_tensors_walk_through_silu_and_stop_at_layers(tiny: dict) -> None:
    layers = {la.name: la for la in tiny["layers"]}
    g = tiny["model"].graph
    assert chain_tensors([layers["c2"]], g, tiny["tail"]) == [
        "a1",
        "c1_out",
        "s1",
    ]  # Mul, Sigmoid, c1's output
    assert chain_tensors([layers["c1"]], g, tiny["tail"]) == ["images"]
    assert chain_tensors([layers["head"]], g, tiny["tail"]) == ["c3_out", "r3"]


def test_probe_is_exact_with_nothing_at_8_bits_and_matches_the_real_int8_model(tiny: dict) -> None:
    idx, ref = pick_probe_images(tiny["model"], tiny["spec"], tiny["images"], 3, threads=1)
    assert len(idx) == 3 and idx == sorted(idx)
    probe = TaskProbe(
        tiny["model"],
        tiny["q8"],
        tiny["layers"],
        tiny["spec"],
        [tiny["images"][i] for i in idx],
        float_tail=tiny["tail"],
        reference=ref,
        threads=1,
    )
    none = probe.fidelity([])
    assert none.drop == 0.0 and none.mean_oks == 1.0 and none.num_ref > 0
    emulated, real = probe.fidelity(range(4)).drop, probe.fidelity_of(tiny["q8"]).drop
    assert real > 0.0 and real / 2 < emulated < real * 2  # same Q/DQ; integer kernels round differently
    ranks = probe.rank()
    assert len(ranks) == 4 and all(r > 0 for r in ranks)
    assert max(ranks) <= real * 1.5  # one layer alone does no more than all of them (within rounding)


def _probe(tiny: dict, model: onnx.ModelProto, q8: onnx.ModelProto) -> TaskProbe:
    """The probe as test_probe_is_exact_... builds it, for `model` and its all 8-bit model `q8`."""
    idx, ref = pick_probe_images(model, tiny["spec"], tiny["images"], 3, threads=1)
    return TaskProbe(
        model,
        q8,
        find_layers(model),
        tiny["spec"],
        [tiny["images"][i] for i in idx],
        float_tail={n.name for n in float_nodes(model)},
        reference=ref,
        threads=1,
    )


def test_ranking_does_not_depend_on_layer_names(tiny: dict) -> None:
    """README: "Layer names are never read" - renaming every node outside the tail (new names sort in
    the reverse of graph order) changes no layer's sensitivity."""
    renamed = onnx.ModelProto()
    renamed.CopyFrom(tiny["model"])
    body = [n for n in renamed.graph.node if not n.name.startswith(TAIL_PREFIX)]
    old = [n.name for n in body]
    for i, n in enumerate(body):
        n.name = f"zz_{len(body) - i:03d}"
    assert {"c1", "c2", "c3", "head"} <= set(old) and not {n.name for n in body} & set(old)
    assert [la.name for la in find_layers(renamed)] != [la.name for la in tiny["layers"]]
    q8 = _all8(renamed, CalibrationSet(tiny["calib"], tiny["spec"]))
    ranks, renamed_ranks = _probe(tiny, tiny["model"], tiny["q8"]).rank(), _probe(tiny, renamed, q8).rank()
    assert len(ranks) == 4 and all(r > 0 for r in ranks)
    np.testing.assert_allclose(renamed_ranks, ranks, rtol=1e-6)


def _fid(drop: float) -> Fidelity:
    return Fidelity(10, 1 - drop, 1.0, 0.0, 1.0, drop)


def test_budget_search_keeps_the_best_measured_and_smaller_wins_ties() -> None:
    sens, macs, unf = [0.4, 0.3, 0.2, 0.1], [1, 1, 1, 1], [{0}, {1}, {2}, {3}]
    measured = {1: 0.05, 2: 0.05, 4: 0.07}
    seen: list[list[int]] = []

    def measure(chosen: list[int]) -> Fidelity:
        seen.append(chosen)
        return _fid(measured[len(chosen)])

    r = search([0, 1, 2, 3], sens, measure, all8=_fid(0.2), macs=macs, unfused=unf, budget=1.0, max_drop=None)
    assert seen == [[0], [0, 1], [0, 1, 2, 3]]  # sizes 1, 2, 4 (0.25, 0.5, 1 of the budget's 4)
    assert r.chosen == [0]  # 1 and 2 tie at 0.05: the smaller plan; 4 layers measured worse
    assert [t.size for t in r.trials] == [0, 1, 2, 4]
    assert r.trials[2].predicted == pytest.approx(0.2 * (1 - 0.7 / 1.0))
    bad = search(
        [0, 1],
        [0.5, 0.5],
        lambda c: _fid(0.3),
        all8=_fid(0.2),
        macs=[1, 1],
        unfused=[{0}, {1}],
        budget=0.9,
        max_drop=None,
    )
    assert bad.chosen == [] and "no plan measured better than all 8-bit" in bad.note


def test_max_drop_search_finds_the_smallest_plan_meeting_it() -> None:
    drops = [0.2, 0.15, 0.12, 0.09, 0.07, 0.05, 0.04, 0.03, 0.02]  # by plan size 0..8
    calls: list[int] = []

    def measure(chosen: list[int]) -> Fidelity:
        calls.append(len(chosen))
        return _fid(drops[len(chosen)])

    kw = {"all8": _fid(0.2), "macs": [1] * 8, "unfused": [{i} for i in range(8)], "budget": None}
    r = search(list(range(8)), [1.0] * 8, measure, max_drop=0.06, **kw)
    assert r.chosen == list(range(5)) and calls == [1, 2, 4, 8, 6, 5]  # doubling, then bisecting
    assert search(list(range(8)), [1.0] * 8, measure, max_drop=0.5, **kw).chosen == []  # all 8-bit fits
    none = search(list(range(8)), [1.0] * 8, measure, max_drop=0.001, **kw)
    assert none.chosen == list(range(8)) and "no plan met --max-drop 0.001" in none.note


def test_latency_aware_order_prefers_cheap_promotions() -> None:
    sens = [0.5, 0.4, 0.1]
    macs = [1000, 10, 10]
    unf = [{0}, {1}, {1, 2}]  # promoting 2 also takes layer 1 off the fused kernels
    assert order_layers(sens, macs, unf, latency_aware=False) == [0, 1, 2]
    assert order_layers(sens, macs, unf, latency_aware=True) == [1, 2, 0]  # 2 is free once 1 is off
    assert predict(0.2, sens, [0]) == pytest.approx(0.2 * (1 - 0.5))


def test_layer_macs_and_unfused_neighbours(tiny: dict) -> None:
    macs = layer_macs(tiny["model"], tiny["layers"])
    assert macs == [8 * 16 * 16 * 27, 8 * 16 * 16 * 72, 8 * 16 * 16 * 8, CH * 16 * 16 * 8]
    unf = unfused_by(tiny["layers"], tiny["model"].graph, tiny["tail"])
    assert unf == [{0}, {1, 0}, {2, 1}, {3, 2}]  # each layer and the layer writing what it reads


def test_float_islands_stay_float_in_onnxruntime(tiny: dict, tmp_path: Path) -> None:
    model, layers = tiny["model"], tiny["layers"]
    by = {la.name: la for la in layers}
    assert island_nodes([by["c2"]], model.graph, tiny["tail"]) == ["act1/mul", "act1/sig", "c2"]
    calib = CalibrationSet(tiny["calib"], tiny["spec"])
    plan = PrecisionPlan(LayerPrecision.INT8, {"c2": LayerPrecision.FLOAT, "head": LayerPrecision.FLOAT})
    with tempfile.TemporaryDirectory() as tmp:
        cache = calibrate(body_model(model), calib, MINMAX, Path(tmp))
        q = quantize_with(model, plan, cache, MINMAX, Path(tmp), "isl")
    onnx.save(q, str(tmp_path / "isl.onnx"))
    counts = optimized_kernels(tmp_path / "isl.onnx", 1)
    assert counts.float_layers == 2  # c2 and head run float kernels on float weights
    prod = {o: n for n in q.graph.node for o in n.output}
    nodes = {n.name: n for n in q.graph.node}
    assert prod[nodes["c2"].input[0]].op_type == "Mul"  # the island reads the float SiLU output


def test_guard_keeps_a_relu_island_float_with_identical_numbers(tmp_path: Path) -> None:
    """DQ -> Conv(float) -> Relu -> Q: onnxruntime >= 1.21 re-quantizes it (WeightBiasQuantization)."""
    w = np.random.default_rng(125).normal(size=(4, 4, 3, 3)).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array(0.02, np.float32), "s"),
        numpy_helper.from_array(np.array(128, np.uint8), "z"),
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(np.zeros(4, np.float32), "B"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q0"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq0"),
        helper.make_node("Conv", ["xd", "W", "B"], ["c"], name="island", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("QuantizeLinear", ["r", "s", "z"], ["yq"], name="q1"),
        helper.make_node("DequantizeLinear", ["yq", "s", "z"], ["y"], name="dq1"),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, str(tmp_path / "plain.onnx"))
    assert count_kernels(read_nodes(tmp_path / "plain.onnx")).float_layers == 1  # as written...
    assert optimized_kernels(tmp_path / "plain.onnx", 1).float_layers == 0  # ...but re-quantized when loaded
    guarded = onnx.ModelProto()
    guarded.CopyFrom(m)
    assert guard_weight_requantization(guarded, {"island"}) == 1
    onnx.save(guarded, str(tmp_path / "guarded.onnx"))
    assert optimized_kernels(tmp_path / "guarded.onnx", 1).float_layers == 1
    x = np.random.default_rng(126).random((1, 4, 8, 8), dtype=np.float32)
    ref = ort.InferenceSession(
        str(tmp_path / "plain.onnx"),
        providers=["CPUExecutionProvider"],
        disabled_optimizers=["WeightBiasQuantization"],
    ).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(tmp_path / "guarded.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_probe_cache_roundtrip_and_key(tiny: dict, tmp_path: Path) -> None:
    calib = sorted(Path(tiny["calib"]).iterdir())
    key = probecache.probe_key(tiny["path"], calib, method="minmax")
    assert key == probecache.probe_key(tiny["path"], calib, method="minmax")
    assert key != probecache.probe_key(tiny["path"], calib, method="entropy")
    assert key != probecache.probe_key(tiny["path"], calib[:-1], method="minmax")
    model = tmp_path / "m.onnx"
    model.write_bytes(Path(tiny["path"]).read_bytes())
    assert probecache.save(model, key, ["a", "b"], [0.5, 0.25])
    assert probecache.load(model, key, ["a", "b"]) == [0.5, 0.25]
    assert probecache.load(model, key, ["a"]) is None and probecache.load(model, "other", ["a", "b"]) is None
    assert json.loads(probecache.cache_path(model).read_text())["layers"] == ["a", "b"]


def test_second_flavour_reuses_the_probe(tiny: dict, tmp_path: Path) -> None:
    model = tmp_path / "pose.onnx"
    model.write_bytes(Path(tiny["path"]).read_bytes())
    a = quantize_model(model, tiny["calib"], tmp_path / "a.onnx", precision=Precision.MIXED, threads=1)
    assert probecache.cache_path(model).is_file() and not any("reused" in n for n in a.notes)
    b = quantize_model(
        model,
        tiny["calib"],
        tmp_path / "b.onnx",
        precision=Precision.MIXED,
        high_precision=HighPrecision.FLOAT,
        threads=1,
    )
    assert any("sensitivity reused from" in n for n in b.notes)
    assert [r.sensitivity for r in a.layers] == [r.sensitivity for r in b.layers]
    assert b.fidelity is not None and b.fidelity_int8 is not None and b.fidelity.drop <= b.fidelity_int8.drop


def test_interrupted_mixed_search_leaves_nothing_behind(
    tiny: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgepose.quant.engine as engine

    model = tmp_path / "in" / "pose.onnx"
    model.parent.mkdir()
    model.write_bytes(Path(tiny["path"]).read_bytes())
    out = tmp_path / "out"
    out.mkdir()

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "search", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quantize_model(model, tiny["calib"], out / "m.onnx", precision=Precision.MIXED, threads=1)
    assert list(out.iterdir()) == [] and sorted(p.name for p in model.parent.iterdir()) == ["pose.onnx"]


@pytest.mark.parametrize("precision", [Precision.INT16, Precision.INT8, Precision.MIXED])
def test_each_quantized_model_is_built_and_measured_once(
    precision: Precision, tiny: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stages that need a model an earlier stage built reuse it (bias correction, the ranking, the final
    quantize of the plan the search measured), and int16 builds no 8-bit model at all."""
    import hashlib

    import edgepose.quant.quantize as quantize
    from edgepose.quant.taskprobe import TaskProbe as Probe

    builds: list[tuple[str, str, str]] = []
    built: list[onnx.ModelProto] = []
    measured: list[int] = []  # which built model, by position (the ranking's variants are not counted)

    def spy_build(
        m: onnx.ModelProto, plan: PrecisionPlan, cache: Path, method: CalibMethod, tmp: Path, tag: str
    ):
        model_hash = hashlib.sha256(m.SerializeToString(deterministic=True)).hexdigest()
        builds.append((model_hash, repr(sorted(plan.layers.items())) + plan.default.value, cache.read_text()))
        built.append(quantize_with(m, plan, cache, method, tmp, tag))
        return built[-1]

    fidelity_of = Probe.fidelity_of

    def spy_fidelity(self: Probe, q: onnx.ModelProto) -> Fidelity:
        measured.extend(i for i, b in enumerate(built) if b is q)
        return fidelity_of(self, q)

    monkeypatch.setattr(quantize, "quantize_with", spy_build)
    monkeypatch.setattr(Probe, "fidelity_of", spy_fidelity)
    rep = quantize_model(tiny["path"], tiny["calib"], tmp_path / "q.onnx", precision=precision, threads=1)
    assert len(builds) == len(set(builds))  # never the same (model, plan, ranges) twice
    assert len(measured) == len(set(measured)) and len(measured) >= len(built) - 1  # the check: end to end
    if precision is Precision.INT16:
        assert [b[1] for b in builds] == ["[]int16"]  # the written model, nothing else
    else:
        assert len(builds) >= 3 and all(b[1].endswith("int8") for b in builds)
    assert (tmp_path / "q.onnx").is_file() and rep.fidelity is not None


def test_a_rejected_equalization_leaves_the_ranking_on_the_plain_model(
    tiny: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Equalization measured and not kept: the layers are ranked on the plain model, exactly as when it is
    never tried (the check images may come from the equalized engine; the probe must not)."""
    import edgepose.quant.engine as engine
    from edgepose.quant.optimize import Options

    monkeypatch.setattr(engine, "better", lambda after, before: False)  # equalization measures worse
    reports = []
    for name, options in (("tried", Options()), ("never", Options(equalize=False))):
        model = tmp_path / name / "pose.onnx"  # its own folder: no ranking cached beside it
        model.parent.mkdir()
        model.write_bytes(Path(tiny["path"]).read_bytes())
        reports.append(
            quantize_model(
                model,
                tiny["calib"],
                model.parent / "q.onnx",
                precision=Precision.MIXED,
                options=options,
                threads=1,
            )
        )
    tried, never = reports
    assert not any("reused" in n for n in tried.notes + never.notes)
    assert (tried.optimizations[0]["stage"], tried.optimizations[0]["kept"]) == ("equalize", False)
    assert [r.sensitivity for r in tried.layers] == pytest.approx(
        [r.sensitivity for r in never.layers], abs=1e-6
    )
