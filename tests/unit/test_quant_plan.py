"""The precision plan -> quantize_static arguments: types, exclusions, 16-bit overrides, option keys."""

from __future__ import annotations

import inspect
from pathlib import Path

import onnx
import pytest
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from edgepose.errors import ModelFileError
from edgepose.onnxkit.graph import tail_nodes
from edgepose.quant.graph import body_model, find_layers, load_float_model, raw_head_outputs
from edgepose.quant.options import LayerPrecision
from edgepose.quant.plan import PrecisionPlan, quantize_static_args, sixteen_bit_tensors
from edgepose.spec import TAIL_PREFIX, GraphKind, PoseSpec, Precision
from tests.helpers.quant_models import build_e2e_model


@pytest.fixture(scope="module")
def e2e_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_e2e_model(tmp_path_factory.mktemp("qplan") / "tiny.onnx")


def _args(model_path: Path, plan: PrecisionPlan) -> tuple[dict, list]:
    m, _ = load_float_model(model_path)
    layers = find_layers(m)
    return quantize_static_args(plan, layers, m.graph, [n.name for n in tail_nodes(m)]), layers


def test_graph_facts_come_from_the_graph(e2e_model: Path) -> None:
    m, spec = load_float_model(e2e_model)
    layers = find_layers(m)
    assert [la.name for la in layers] == [
        "/c1/Conv",
        "/c2/Conv",
        "/c3a/Conv",
        "/c3b/Conv",
        "/c4/Conv",
        "/h4/Conv",
        "/h8/Conv",
    ]
    assert all(la.axis == 0 and len(la.activations) == 1 for la in layers)
    assert raw_head_outputs(m) == ["raw_s4", "raw_s8"]
    body = body_model(m)
    assert [o.name for o in body.graph.output] == ["raw_s4", "raw_s8"]
    assert not any(n.name.startswith(TAIL_PREFIX) for n in body.graph.node)
    assert len(body.graph.node) == 7 + 6  # 7 convs, 5 relus, 1 concat
    assert spec.input_size == (128, 128)


def test_uniform_8_and_16_bit(e2e_model: Path) -> None:
    a8, _ = _args(e2e_model, PrecisionPlan.uniform(Precision.INT8))
    assert (a8["activation_type"], a8["weight_type"]) == (QuantType.QUInt8, QuantType.QInt8)
    assert a8["quant_format"] == QuantFormat.QDQ and a8["per_channel"] is True and a8["reduce_range"] is False
    assert a8["extra_options"]["TensorQuantOverrides"] == {}
    tail = {n.name for n in tail_nodes(onnx.load(str(e2e_model)))}
    assert set(a8["nodes_to_exclude"]) == tail and len(tail) > 30
    a16, _ = _args(e2e_model, PrecisionPlan.uniform(Precision.INT16))
    assert (a16["activation_type"], a16["weight_type"]) == (QuantType.QUInt16, QuantType.QInt16)


def test_int16_layer_overrides_reach_back_to_the_producing_layers(e2e_model: Path) -> None:
    plan = PrecisionPlan(
        LayerPrecision.INT8, {"/c4/Conv": LayerPrecision.INT16, "/h4/Conv": LayerPrecision.FLOAT}
    )
    args, _ = _args(e2e_model, plan)
    ov = args["extra_options"]["TensorQuantOverrides"]
    m = onnx.load(str(e2e_model))
    c4 = next(n for n in m.graph.node if n.name == "/c4/Conv")
    cat = next(n for n in m.graph.node if n.op_type == "Concat" and not n.name.startswith(TAIL_PREFIX))
    assert ov[c4.input[1]] == [{"quant_type": QuantType.QInt16, "axis": 0}]
    # c4 reads the concat; the concat reads two ReLUs, which read c3a/c3b: all produced at 16 bits.
    relus = list(cat.input)
    relu_ins = [n.input[0] for n in m.graph.node if n.output[0] in relus]
    assert set(ov) == {c4.input[1], c4.input[0], *relus, *relu_ins}
    assert all(
        v[0]["quant_type"] == QuantType.QUInt16 and "convert" not in v[0]
        for k, v in ov.items()
        if k != c4.input[1]
    )
    assert "/h4/Conv" in args["nodes_to_exclude"] and "/c4/Conv" not in args["nodes_to_exclude"]


def test_shared_input_converts_for_8_bit_readers(e2e_model: Path) -> None:
    # x2 (the c2 ReLU) is read by c3a, c3b and the head h4: promote c3a only.
    args, _ = _args(e2e_model, PrecisionPlan(LayerPrecision.INT8, {"/c3a/Conv": LayerPrecision.INT16}))
    ov = args["extra_options"]["TensorQuantOverrides"]
    m = onnx.load(str(e2e_model))
    x2 = next(n for n in m.graph.node if n.name == "/c3a/Conv").input[0]
    assert ov[x2][0]["quant_type"] == QuantType.QUInt16
    assert ov[x2][0]["convert"] == {"quant_type": QuantType.QUInt8, "recv_nodes": {"/c3b/Conv", "/h4/Conv"}}


def test_every_option_key_is_one_quantize_static_documents() -> None:
    args = quantize_static_args(PrecisionPlan(LayerPrecision.INT8), [], onnx.GraphProto(), [])
    doc = inspect.getdoc(quantize_static) or ""
    assert set(args) <= set(inspect.signature(quantize_static).parameters)
    for key in args["extra_options"]:
        assert f"{key} = " in doc, key


def test_rejects_what_is_not_a_float_end_to_end_export(e2e_model: Path, tmp_path: Path) -> None:
    m = onnx.load(str(e2e_model))
    bare = onnx.ModelProto()
    bare.CopyFrom(m)
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelFileError, match=r"no edgepose metadata .*`edgepose export --from-onnx"):
        load_float_model(tmp_path / "bare.onnx")
    raw = onnx.ModelProto()
    raw.CopyFrom(m)
    for p in raw.metadata_props:
        if p.key == "edgepose.graph":
            p.value = f'"{GraphKind.RAW.value}"'
    onnx.save(raw, str(tmp_path / "raw.onnx"))
    with pytest.raises(ModelFileError, match="raw-head graph"):
        load_float_model(tmp_path / "raw.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelFileError, match="not a readable ONNX"):
        load_float_model(tmp_path / "junk.onnx")
    assert PoseSpec().precision is Precision.FLOAT


def test_the_8_bit_copy_of_a_16_bit_tensor_keeps_the_calibrated_range(e2e_model: Path) -> None:
    m, _ = load_float_model(e2e_model)
    layers = find_layers(m)
    tail = [n.name for n in tail_nodes(m)]
    x2 = next(n for n in m.graph.node if n.name == "/c3a/Conv").input[0]  # also read by c3b and h4 at 8 bits
    calibrated = {x2: (-1.5, 3.0), "unrelated": (-1.0, 1.0)}
    plan = PrecisionPlan(LayerPrecision.INT8, {"/c3a/Conv": LayerPrecision.INT16})
    args = quantize_static_args(plan, layers, m.graph, tail, calibrated)
    entry = args["extra_options"]["TensorQuantOverrides"][x2][0]
    # the 16-bit tensor's own range (with headroom) comes from the cache, where onnxruntime adjusts it
    assert "rmin" not in entry and "rmax" not in entry
    assert (float(entry["convert"]["rmin"]), float(entry["convert"]["rmax"])) == (-1.5, 3.0)
    assert "unrelated" not in args["extra_options"]["TensorQuantOverrides"]
    assert x2 in sixteen_bit_tensors(plan, layers, m.graph, set(tail))
    assert sixteen_bit_tensors(PrecisionPlan(LayerPrecision.INT16), layers, m.graph, set(tail)) is None
    # without ranges nothing is overridden
    no_ranges, _ = _args(e2e_model, plan)
    assert "rmin" not in no_ranges["extra_options"]["TensorQuantOverrides"][x2][0]["convert"]
    all8 = quantize_static_args(
        PrecisionPlan(LayerPrecision.INT8), layers, m.graph, [n.name for n in tail_nodes(m)], calibrated
    )
    assert all8["extra_options"]["TensorQuantOverrides"] == {}
