"""`edgepose quantize` end to end on a small seeded end-to-end graph: structure, error ordering,
determinism, metadata, and every bad input through the CLI (message, exit code, nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper
from typer.testing import CliRunner

from edgepose import defaults
from edgepose.cli import app
from edgepose.quant.fidelity import nmse
from edgepose.quant.graph import raw_head_outputs
from edgepose.quant.optimize import Options
from edgepose.quant.options import HighPrecision
from edgepose.quant.ortsteps import raw_outputs
from edgepose.quant.quantize import quantize_model
from edgepose.spec import (
    DETECTIONS_NAME,
    INPUT_NAME,
    NUM_DETS_NAME,
    QUANT_METHOD_KEY,
    QUANT_PLAN_KEY,
    QUANT_SOURCE_KEY,
    TAIL_PREFIX,
    PoseSpec,
    Precision,
)
from tests.helpers.quant_models import build_e2e_model, make_calib_dir

QDQ = ("QuantizeLinear", "DequantizeLinear")
runner = CliRunner()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("quant_e2e")
    model = build_e2e_model(d / "tiny.onnx", seed=110)
    calib = make_calib_dir(d / "calib", n=12, seed=111)
    out = {"dir": d, "float": model, "calib": calib}
    for p in (Precision.INT8, Precision.INT16, Precision.MIXED):
        quantize_model(model, calib, d / f"tiny.{p.value}.onnx", precision=p, threads=1)
        out[p.value] = d / f"tiny.{p.value}.onnx"
    return out


def _zero_point_types(m: onnx.ModelProto) -> dict[str, int]:
    """Q/DQ node name -> zero-point element type."""
    inits = {t.name: t for t in m.graph.initializer}
    return {n.name: inits[n.input[2]].data_type for n in m.graph.node if n.op_type in QDQ}


def _weight_bits(m: onnx.ModelProto) -> dict[str, int]:
    """Conv name -> element type of the quantized weight its DequantizeLinear reads."""
    inits = {t.name: t for t in m.graph.initializer}
    prod = {o: n for n in m.graph.node for o in n.output}
    out = {}
    for n in m.graph.node:
        if n.op_type == "Conv" and n.input[1] in prod and prod[n.input[1]].op_type == "DequantizeLinear":
            out[n.name] = inits[prod[n.input[1]].input[0]].data_type
    return out


def _report(path: Path) -> dict:
    return json.loads(path.with_name(path.stem + ".quant.json").read_text())


def test_each_quantized_file_records_the_float_file_it_was_made_from(work: dict[str, Path]) -> None:
    """Its lineage: bench takes ΔAP against the float file with this content, whatever the names."""
    from edgepose.fsio import file_digest

    for p in ("int8", "int16", "mixed"):
        props = {m.key: m.value for m in onnx.load(str(work[p])).metadata_props}
        assert json.loads(props[QUANT_SOURCE_KEY]) == {
            "file": "tiny.onnx",
            "sha256": file_digest(work["float"]),
        }


def test_zero_point_types_per_precision(work: dict[str, Path]) -> None:
    act8, w8, act16, w16, bias = (
        TensorProto.UINT8,
        TensorProto.INT8,
        TensorProto.UINT16,
        TensorProto.INT16,
        TensorProto.INT32,
    )
    z8 = set(_zero_point_types(onnx.load(str(work["int8"]))).values())
    z16 = set(_zero_point_types(onnx.load(str(work["int16"]))).values())
    zmix = set(_zero_point_types(onnx.load(str(work["mixed"]))).values())
    assert z8 == {act8, w8, bias}
    assert z16 == {act16, w16, bias}
    assert zmix == {act8, w8, act16, w16, bias}  # --mixed keeps some layers at 16 bits on this model
    assert len(_report(work["mixed"])["high_precision_layers"]) == 1  # the search's pick (next test)
    assert set(_weight_bits(onnx.load(str(work["int8"]))).values()) == {w8}
    assert len(_weight_bits(onnx.load(str(work["int16"])))) == 7


def test_mixed_16_bit_set_equals_the_reported_plan(work: dict[str, Path]) -> None:
    m = onnx.load(str(work["mixed"]))
    sixteen = sorted(n for n, t in _weight_bits(m).items() if t == TensorProto.INT16)
    rep = _report(work["mixed"])
    props = {p.key: p.value for p in m.metadata_props}
    assert sixteen == sorted(rep["high_precision_layers"]) == sorted(json.loads(props[QUANT_PLAN_KEY]))
    k = len(sixteen)
    # the budget allows floor(0.3 * 7) = 2 of 7 layers; 1 (/h8/Conv) measured best (drops 1.41e-4, 1.26e-4,
    # 1.36e-4 for 0, 1, 2 layers), and the smallest plan measuring best is kept
    assert k == 1 and len(_weight_bits(m)) == 7 and sixteen == ["/h8/Conv"]
    assert sum("layers: predicted" in line for line in rep["search"]) == 3  # 0, 1 and 2 layers measured
    ranks = {r["name"]: r["rank"] for r in rep["layers"]}
    assert sorted(ranks[n] for n in sixteen) == list(range(1, k + 1))  # the first k of the order
    assert rep["fraction_high"] == pytest.approx(k / 7)
    # every plan tried was measured, and the one chosen measured best (a smaller one wins ties)
    tried = [line for line in rep["search"] if "measured" in line]
    drops = {int(t.split(" layers")[0]): float(t.split("measured ")[1].split(" ")[0]) for t in tried}
    assert drops[k] == min(drops.values()) and all(drops[j] > drops[k] for j in drops if j < k)


@pytest.mark.parametrize("which", ["int8", "int16", "mixed"])
def test_tail_stays_float_and_contract_is_kept(work: dict[str, Path], which: str) -> None:
    f, q = onnx.load(str(work["float"])), onnx.load(str(work[which]))
    prod = {o: n for n in q.graph.node for o in n.output}
    tail = [n for n in q.graph.node if n.name.startswith(TAIL_PREFIX)]
    assert len(tail) >= len([n for n in f.graph.node if n.name.startswith(TAIL_PREFIX)])
    assert not any(n.op_type in QDQ for n in tail)
    assert not any(i in prod and prod[i].op_type in QDQ for n in tail for i in n.input)
    assert [(i.name, i.type.tensor_type.elem_type) for i in q.graph.input] == [
        (i.name, i.type.tensor_type.elem_type) for i in f.graph.input
    ]
    assert [o.name for o in q.graph.output] == [DETECTIONS_NAME, NUM_DETS_NAME]
    props = {p.key: p.value for p in q.metadata_props}
    spec, fspec = (
        PoseSpec.from_metadata(props),
        PoseSpec.from_metadata({p.key: p.value for p in f.metadata_props}),
    )
    assert spec == fspec.replace(precision=Precision(which))
    assert json.loads(props[QUANT_METHOD_KEY])["method"] == "minmax"
    assert q.ir_version <= 10
    sess = ort.InferenceSession(str(work[which]), providers=["CPUExecutionProvider"])
    det, num = sess.run(None, {INPUT_NAME: np.full((1, 3, 128, 128), 0.4, np.float32)})
    assert det.shape == (1, 20, 57) and det.dtype == np.float32 and num.dtype == np.int64


def test_raw_output_error_orders_16_mixed_8(work: dict[str, Path]) -> None:
    from edgepose.quant.calib import CalibrationSet

    spec = PoseSpec.from_metadata({p.key: p.value for p in onnx.load(str(work["float"])).metadata_props})
    images = CalibrationSet(work["calib"], spec).subset(6)
    f = onnx.load(str(work["float"]))
    assert raw_head_outputs(f) == ["raw_s4", "raw_s8"]
    ref = raw_outputs(f, images, threads=1)
    err = {
        k: nmse(raw_outputs(onnx.load(str(work[k])), images, threads=1), ref)
        for k in ("int16", "mixed", "int8")
    }
    assert err["int16"] < err["mixed"] < 0.9 * err["int8"], err  # one head layer at 16 bits: 4.7e-5 vs 5.4e-5
    assert err["int16"] < err["int8"] / 20  # 16 bits is near-lossless by comparison
    assert err["int8"] < 1e-2  # and 8 bits is still a faithful model
    # In the task unit (fidelity to float on the probe images) mixed measures better than all 8-bit.
    rep = _report(work["mixed"])
    # (fidelity_int8 is in the search's unit, at the float model's detections: compare like with like)
    assert rep["fidelity_anchored"]["drop"] < rep["fidelity_int8"]["drop"]
    assert _report(work["int16"])["fidelity_anchored"]["drop"] < rep["fidelity_int8"]["drop"]


def test_quantizing_twice_gives_identical_plan_bytes_and_outputs(work: dict[str, Path]) -> None:
    again = work["dir"] / "again.mixed.onnx"
    quantize_model(work["float"], work["calib"], again, precision=Precision.MIXED, threads=1)
    assert _report(again)["high_precision_layers"] == _report(work["mixed"])["high_precision_layers"]
    a, b = onnx.load(str(again)), onnx.load(str(work["mixed"]))
    assert a.SerializeToString() == b.SerializeToString()
    x = np.random.default_rng(112).random((1, 3, 128, 128), dtype=np.float32)
    outs = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: x})
        for p in (again, work["mixed"])
    ]
    for u, v in zip(*outs, strict=True):
        np.testing.assert_array_equal(u, v)


def test_high_precision_float_excludes_the_sensitive_layers(work: dict[str, Path]) -> None:
    out = work["dir"] / "tiny.mf.onnx"
    rep = quantize_model(
        work["float"],
        work["calib"],
        out,
        precision=Precision.MIXED,
        high_precision=HighPrecision.FLOAT,
        threads=1,
    )
    m = onnx.load(str(out))
    bits = _weight_bits(m)
    high = rep.high_precision_layers()
    assert len(high) == 1 and not set(high) & set(bits)  # float weights: no DQ feeds them
    assert sorted(high) == sorted(_report(work["mixed"])["high_precision_layers"])  # the same layer
    assert set(bits.values()) == {TensorProto.INT8} and len(bits) == 7 - len(high)
    assert all(inits.data_type != TensorProto.INT16 for inits in m.graph.initializer)
    conv_w = {n.name: n.input[1] for n in m.graph.node if n.op_type == "Conv"}
    inits = {t.name: t for t in m.graph.initializer}
    assert all(inits[conv_w[n]].data_type == TensorProto.FLOAT for n in high)


def _int_weights(path: Path) -> dict[str, np.ndarray]:
    m = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer
            if t.data_type == TensorProto.INT8 and t.name.endswith("weight_quantized")}  # fmt: skip


def test_seed_picks_the_rounding_sample_and_keys_the_probe(work: dict[str, Path], tmp_path: Path) -> None:
    model = Path(shutil.copy(work["float"], tmp_path / "tiny.onnx"))  # its own probe cache beside it
    fitted = Options(rounding=True)

    def int8(seed: int, name: str) -> tuple[Path, object]:
        out = tmp_path / name
        rep = quantize_model(model, work["calib"], out, precision=Precision.INT8, threads=1, options=fitted,
                             seed=seed)  # fmt: skip
        return out, rep

    a, ra = int8(0, "a.onnx")
    b, _ = int8(0, "b.onnx")
    c, rc = int8(1, "c.onnx")
    assert a.read_bytes() == b.read_bytes()  # same seed, same bytes
    wa, wc = _int_weights(a), _int_weights(c)
    assert wa.keys() == wc.keys() and len(wa) == 7
    changed = [k for k in wa if not np.array_equal(wa[k], wc[k])]
    assert changed  # another patch sample, other rounding decisions somewhere
    assert (ra.seed, rc.seed, _report(c)["seed"]) == (0, 1, 1)
    step = next(s for s in _report(c)["optimizations"] if s["stage"] == "rounding")
    assert step["kept"] and "patch sample seed 1" in step["detail"]

    def mixed(seed: int, high: HighPrecision) -> list[str]:
        rep = quantize_model(model, work["calib"], tmp_path / f"m{seed}{high.value}.onnx",
                             precision=Precision.MIXED, high_precision=high, threads=1, options=fitted,
                             seed=seed)  # fmt: skip
        return rep.notes

    reused = "sensitivity reused from"
    assert not any(reused in n for n in mixed(0, HighPrecision.INT16))
    assert any(reused in n for n in mixed(0, HighPrecision.FLOAT))  # same seed: the probe runs once
    assert not any(reused in n for n in mixed(1, HighPrecision.FLOAT))  # its 8-bit model differs


def test_max_drop_promotes_until_the_measured_fidelity_drop_fits(work: dict[str, Path]) -> None:
    d8 = _report(work["int8"])["fidelity"]["drop"]
    assert d8 > 0
    loose = quantize_model(
        work["float"],
        work["calib"],
        work["dir"] / "loose.onnx",
        precision=Precision.MIXED,
        max_drop=min(0.99, d8 * 2),
        threads=1,
    )
    assert loose.high_precision_layers() == [] and loose.budget is None
    assert not any("headroom" in line for line in loose.summary())  # nothing at 16 bits: no headroom said
    # the plan is the all-8-bit model the optimize stage built: written, not built again, and said so
    assert loose.quantize_reused
    assert "quantize 0.0 s (the model an earlier stage built)" in loose.summary()[-1 - len(loose.notes)]
    assert _report(work["int16"])["quantize_reused"] is False  # int16's one build is the final quantize
    tight = quantize_model(
        work["float"],
        work["calib"],
        work["dir"] / "tight.onnx",
        precision=Precision.MIXED,
        max_drop=1e-9,
        threads=1,
    )
    # nothing reaches a 1e-9 drop: the best plan tried is kept, and the report says so
    assert any("no plan met --max-drop 1e-09" in n for n in tight.notes)
    assert len(tight.high_precision_layers()) == 7  # every layer promoted
    assert tight.fidelity is not None and tight.fidelity.drop < d8
    assert any("16-bit ranges with 2x headroom" in line for line in tight.summary())


def test_budget_default_is_read_from_defaults_and_the_file_is_finalized(
    work: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "MIXED_BUDGET", 0.5)
    out = work["dir"] / "half.onnx"
    rep = quantize_model(work["float"], work["calib"], out, precision=Precision.MIXED, threads=1)
    # floor(0.5 * 7) = 3 layers allowed: plans up to 3 measured, none larger; 1 measured best
    assert rep.budget == 0.5 and len(rep.high_precision_layers()) == 1
    assert [line.split(" layers")[0] for line in rep.search if "layers: predicted" in line] == [
        "0",
        "1",
        "2",
        "3",
    ]
    m = onnx.load(str(out))
    onnx.checker.check_model(m, full_check=True)
    assert (m.ir_version, m.producer_name) == (10, "edgepose")  # opset 21: 16-bit Q/DQ
    keys = [p.key for p in m.metadata_props]
    assert keys == sorted(keys) and QUANT_PLAN_KEY in keys
    assert (
        json.loads(dict((p.key, p.value) for p in m.metadata_props)[QUANT_PLAN_KEY])
        == rep.high_precision_layers()
    )


def test_cli_writes_model_report_and_table(work: dict[str, Path]) -> None:
    out = work["dir"] / "cli.onnx"
    res = runner.invoke(
        app,
        [
            "quantize",
            str(work["float"]),
            "--calib",
            str(work["calib"]),
            "--bits",
            "8",
            "--num-calib",
            "8",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    # --bits: a summary stands for the table (its rows would all say int8); --verbose lists the layers
    assert "7 layers (7 Conv), all at int8" in res.output and "/c3b/Conv" not in res.output
    assert "8 images, minmax" in res.output and "headroom" not in res.output  # 8-bit: calibrated ranges
    rep = json.loads((work["dir"] / "cli.quant.json").read_text())
    assert rep["num_calib"] == 8 and rep["precision"] == "int8" and len(rep["layers"]) == 7
    onnx.checker.check_model(onnx.load(str(out)))
    args = ["quantize", str(work["float"]), "--calib", str(work["calib"]), "--bits", "8", "--num-calib", "6"]
    res = runner.invoke(app, [*args, "--out", str(out), "--verbose"])
    assert res.exit_code == 1 and f"{out} already exists; pass --force" in res.output  # the overwrite rule
    res = runner.invoke(app, [*args, "--out", str(out), "--verbose", "--force", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "/c3b/Conv" in res.output
    assert json.loads((work["dir"] / "cli.quant.json").read_text())["seed"] == 3
    out16 = work["dir"] / "cli16.onnx"
    res = runner.invoke(app, [*args[:4], "--bits", "16", "--num-calib", "6", "--out", str(out16)])
    assert res.exit_code == 0, res.output
    assert "16-bit ranges with 2x headroom" in res.output  # why a range is wider than calibrated


def _bad_setups(work: dict[str, Path], tmp: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp / "empty"
    empty.mkdir()
    bare = onnx.load(str(work["float"]))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp / "bare.onnx"))
    shutil.copy(work["int8"], tmp / "q8.onnx")
    m, c = str(work["float"]), str(work["calib"])
    return {
        "empty calib": ([m, "--calib", str(empty), "--bits", "8"], "no images in"),
        "missing calib": ([m, "--calib", str(tmp / "nope"), "--bits", "8"], "does not exist"),
        "too few": (
            [m, "--calib", c, "--bits", "8", "--num-calib", "50"],
            "--num-calib 50 asks for more images than",
        ),
        "not edgepose": ([str(tmp / "bare.onnx"), "--calib", c, "--bits", "8"], "no edgepose metadata"),
        "quantized": (
            [str(tmp / "q8.onnx"), "--calib", c, "--bits", "8"],
            "already quantized (precision int8)",
        ),
        "budget": ([m, "--calib", c, "--mixed", "--budget", "1.5"], "--budget 1.5 is outside (0, 1)"),
        "budget 0": ([m, "--calib", c, "--mixed", "--budget", "0"], "--budget 0.0 is outside (0, 1)"),
        "bits 4": ([m, "--calib", c, "--bits", "4"], "--bits 4 is not supported"),
        "both": ([m, "--calib", c, "--bits", "8", "--mixed"], "choose exactly one of"),
        "budget without mixed": (
            [m, "--calib", c, "--bits", "8", "--budget", "0.2"],
            "apply to --mixed only",
        ),
        "max-drop": ([m, "--calib", c, "--mixed", "--max-drop", "-1"], "--max-drop -1.0 is outside (0, 1)"),
        "few calib": ([m, "--calib", c, "--bits", "8", "--num-calib", "2"], "2 calibration image(s) in"),
        "seed": ([m, "--calib", c, "--bits", "8", "--seed", "-1"], "--seed -1 is negative; use 0 or more"),
    }


BAD = (
    "empty calib", "missing calib", "too few", "not edgepose", "quantized", "budget", "budget 0", "bits 4",
    "both", "budget without mixed", "max-drop", "few calib", "seed",
)  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_cli_bad_inputs_fail_in_one_line_and_write_nothing(
    work: dict[str, Path], tmp_path: Path, case: str
) -> None:
    args, message = _bad_setups(work, tmp_path)[case]
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    res = runner.invoke(app, ["quantize", *args, "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert message in res.output and res.output.count("error:") == 1
    assert len(res.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no model, no report, no temp file
    assert not list(out.parent.iterdir())
    assert numpy_helper is not None


@pytest.mark.slow
def test_real_export_keeps_head_outputs_and_tail_float(tiny_onnx: Path, tmp_path: Path) -> None:
    """The export helper's end-to-end tiny model: 8 and 16 bits, float from the head convs on."""
    from edgepose.quant.calib import CalibrationSet
    from edgepose.quant.graph import LAYER_OPS

    calib = make_calib_dir(tmp_path / "calib", n=8, seed=113)
    f = onnx.load(str(tiny_onnx))
    spec = PoseSpec.from_metadata({p.key: p.value for p in f.metadata_props})
    images = CalibrationSet(calib, spec).subset(2)
    ref = raw_outputs(f, images, threads=1)
    outs = {}
    for p in (Precision.INT8, Precision.INT16):
        out = tmp_path / f"t.{p.value}.onnx"
        outs[p] = quantize_model(tiny_onnx, calib, out, precision=p, num_probe_images=2, threads=1)
        q = onnx.load(str(tmp_path / f"t.{p.value}.onnx"))
        prod = {o: n for n in q.graph.node for o in n.output}
        for t in raw_head_outputs(q):  # walk back to the head conv: no Q/DQ on the way
            n = prod[t]
            while n.op_type not in LAYER_OPS:
                assert n.op_type not in QDQ, (t, n.name)
                n = prod[n.input[0]]
        assert not any(n.op_type in QDQ for n in q.graph.node if n.name.startswith(TAIL_PREFIX))
    e8 = nmse(raw_outputs(onnx.load(str(tmp_path / "t.int8.onnx")), images, threads=1), ref)
    e16 = nmse(raw_outputs(onnx.load(str(tmp_path / "t.int16.onnx")), images, threads=1), ref)
    assert e16 < e8 / 100 and e8 < 2e-2, (e16, e8)
    assert outs[Precision.INT8].raw_nmse < 2e-2 and len(outs[Precision.INT8].layers) >= 20
    # 16 bits: the detections themselves match float (nearest box, L-inf, px).
    x = images[0]
    fd, fn = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"]).run(
        None, {INPUT_NAME: x}
    )
    qd, qn = ort.InferenceSession(str(tmp_path / "t.int16.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {INPUT_NAME: x}
    )
    assert abs(int(fn[0]) - int(qn[0])) <= 1 and int(fn[0]) > 5
    fb, qb = fd[0, : int(fn[0]), :4], qd[0, : int(qn[0]), :4]
    nearest = np.abs(fb[:, None, :] - qb[None, :, :]).max(-1).min(1)  # (n_float,)
    assert np.percentile(nearest, 90) < 0.5, nearest
