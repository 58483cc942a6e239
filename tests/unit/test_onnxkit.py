"""The shared ONNX toolkit (edgepose.onnxkit) and the one onnxruntime session factory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgepose.errors import ExportError, ModelFileError, OutputError
from edgepose.export.importer.layout import reject_static
from edgepose.onnxkit import model as onnxkit_model
from edgepose.onnxkit.graph import dedupe_opsets, default_opset, tail_nodes, with_outputs
from edgepose.onnxkit.model import finalize, pin_ir_version, set_metadata, spec_of
from edgepose.runtime.preprocess import preprocess, preprocess_batch
from edgepose.runtime.session import cpu_session, session_options
from edgepose.spec import METADATA_PREFIX, TAIL_PREFIX, InputFormat, PoseSpec


def _identity(opset: int = 17, extra: tuple[tuple[str, int], ...] = ()) -> onnx.ModelProto:
    """x (1, 3) -> Identity -> y; one tail-named node; onnx's default IR version (newer than ORT loads)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"], name=TAIL_PREFIX + "id")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    imports = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in extra)]
    return helper.make_model(graph, opset_imports=imports)


@pytest.mark.parametrize(("opset", "ir"), [(13, 7), (17, 8), (21, 10)])
def test_ir_version_is_the_lowest_the_opsets_need(opset: int, ir: int) -> None:
    m = _identity(opset)
    assert m.ir_version == onnx.IR_VERSION and m.ir_version > ir
    assert pin_ir_version(m) == ir and m.ir_version == ir


def test_ir_version_above_onnxruntime_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnxkit_model, "ORT_MAX_IR_VERSION", 9)
    with pytest.raises(ExportError, match=r"need IR 10, onnxruntime loads <= 9; choose a lower --opset"):
        pin_ir_version(_identity(21))


def test_metadata_replaces_ours_and_keeps_others_first() -> None:
    m = _identity()
    for k, v in (("author", "someone"), (METADATA_PREFIX + "old", "1"), ("license", "x")):
        m.metadata_props.add(key=k, value=v)
    ours = PoseSpec(name="a").to_metadata()
    set_metadata(m, ours)
    keys = [p.key for p in m.metadata_props]
    assert keys == ["author", "license", *ours]
    assert spec_of(m) == PoseSpec(name="a")
    with pytest.raises(ValueError, match=r"'author' does not start with 'edgepose\.'"):
        set_metadata(m, {"author": "me"})


def test_opsets_dedupe_and_default() -> None:
    m = _identity(17, (("ai.onnx", 13), ("com.microsoft", 1)))
    assert default_opset(m) == 17
    dedupe_opsets(m)
    assert [(i.domain, i.version) for i in m.opset_import] == [("", 17), ("com.microsoft", 1)]
    del m.opset_import[:]
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(
        ModelFileError, match=r"imports no default-domain \(ai.onnx\) opset; re-export it with opset 17"
    ):
        default_opset(m)
    assert [n.name for n in tail_nodes(_identity())] == [TAIL_PREFIX + "id"]


def test_with_outputs_appends_in_order_once_on_a_copy() -> None:
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"]),
            helper.make_node("Neg", ["a"], ["b"]),
            helper.make_node("Identity", ["b"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    before = m.SerializeToString()
    out = with_outputs(m, ["b", "y", "a", "b"])
    assert m.SerializeToString() == before
    assert [o.name for o in out.graph.output] == ["y", "b", "a"]
    assert out.graph.output[0] == m.graph.output[0]
    assert out.graph.output[1] == helper.make_tensor_value_info("b", TensorProto.FLOAT, None)
    ints = with_outputs(m, ["a"], TensorProto.INT64).graph.output[1]
    assert ints.type.tensor_type.elem_type == TensorProto.INT64
    assert not ints.type.tensor_type.HasField("shape")
    assert with_outputs(m, ["a"], None).graph.output[1] == helper.make_empty_tensor_value_info("a")
    got = cpu_session(out.SerializeToString()).run(["a", "b"], {"x": np.array([[-1, 0, 2]], np.float32)})
    np.testing.assert_array_equal(got[0], [[0, 0, 2]])
    np.testing.assert_array_equal(got[1], [[0, 0, -2]])


def test_finalize_pins_stamps_checks_verifies_and_writes(tmp_path: Path) -> None:
    out, seen = tmp_path / "m.onnx", []

    def beside() -> None:
        seen.append(out.exists())  # the model is still a temp file while its companion is written
        (tmp_path / "m.json").write_text("{}")

    w = finalize(_identity(), PoseSpec(name="f"), out, verify=lambda g: g.ir_version * 10, beside=beside)
    assert (w.path, w.ir_version, w.verified, w.size_bytes) == (out, 8, 80, out.stat().st_size)
    assert seen == [False]
    m = onnx.load(str(out))
    assert (m.ir_version, m.producer_name) == (8, "edgepose") and spec_of(m) == PoseSpec(name="f")
    sess = cpu_session(out)  # onnxruntime loads what finalize pins
    np.testing.assert_array_equal(sess.run(None, {"x": np.ones((1, 3), np.float32)})[0], np.ones((1, 3)))


def test_finalize_writes_nothing_when_a_step_fails(tmp_path: Path) -> None:
    bad = _identity()
    bad.graph.node[0].input[0] = "missing"
    with pytest.raises(ExportError, match=r"fails onnx\.checker .*nothing was written: this is a bug"):
        finalize(bad, PoseSpec(), tmp_path / "bad.onnx")

    def fail(_: onnx.ModelProto) -> None:
        raise ExportError("verification failed")

    with pytest.raises(ExportError, match="verification failed"):
        finalize(_identity(), PoseSpec(), tmp_path / "v.onnx", verify=fail)

    def disk_full() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="no space left"):
        finalize(_identity(), PoseSpec(), tmp_path / "b.onnx", beside=disk_full)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("op", ["MatMulIntegerToFloat", "QGemm", "QLinearConv", "DequantizeLinear"])
def test_the_importer_refuses_every_quantized_op(op: str) -> None:
    m = _identity()
    m.graph.node.append(helper.make_node(op, ["y"], ["z"], name="q", domain="com.microsoft"))
    with pytest.raises(ModelFileError, match=f"src.onnx is already quantized \\(it has {op} nodes\\)"):
        reject_static(m, "src.onnx")


def test_session_options_mean_one_thing() -> None:
    default = ort.SessionOptions()
    so = session_options()
    assert so.intra_op_num_threads == default.intra_op_num_threads == 0  # 0: onnxruntime decides
    assert (so.inter_op_num_threads, so.log_severity_level) == (1, 3)
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so = session_options(3, optimize=False, quiet=True)
    assert (so.intra_op_num_threads, so.log_severity_level) == (3, 4)
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL


def test_batch_preprocess_stacks_the_single_image_path() -> None:
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((50, 80), (64, 64), (90, 30))]
    for fmt in InputFormat:
        spec = PoseSpec(input_size=(64, 48), input_format=fmt)
        x, infos = preprocess_batch(images, spec)
        singles = [preprocess(im, spec) for im in images]
        assert x.shape == (3, 3, 64, 48) and x.dtype == singles[0][0].dtype
        np.testing.assert_array_equal(x, np.concatenate([t for t, _ in singles]))
        assert infos == [info for _, info in singles]
