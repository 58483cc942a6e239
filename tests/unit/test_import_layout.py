"""Layout recognition for `export --from-onnx`: which third-party outputs are pose; one-line rejections.

Graphs are built with onnx.helper (no torch): a strided Conv makes a (B, C, N) map whose chosen channels
pass through a Sigmoid, as Ultralytics heads do, so the probe sees exactly the structure it must detect.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from edgepose.cli import app
from edgepose.errors import ConfigError, ExportError, ModelFileError
from edgepose.export.importer import import_onnx
from edgepose.export.importer.layout import (
    EXPECTED,
    Probe,
    classify,
    probe,
    sigmoid_sources,
)
from edgepose.export.importer.meta import infer_strides, keypoint_meta
from edgepose.export.importer.options import KptConf
from edgepose.spec import COCO_KEYPOINTS, COCO_SKELETON, PoseSpec

SEED = 120
SIZE = 64  # one stride-8 level: N = 64


def head_graph(channels: int, sigmoid: list[int], *, size: tuple[int | str, int | str] = (SIZE, SIZE),
               extra_outputs: tuple[tuple[str, list[int]], ...] = (),
               ops: tuple[str, ...] = ()) -> onnx.ModelProto:  # fmt: skip
    """images (1, 3, H, W) -> Conv s8 -> (1, C, N); the channels in `sigmoid` pass Sigmoid + Cast + Concat."""
    rng = np.random.default_rng(SEED)
    w = numpy_helper.from_array((rng.standard_normal((channels, 3, 8, 8)) * 0.5).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, channels, -1], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["images", "w"], ["feat"], name="conv", strides=[8, 8]),
        helper.make_node("Reshape", ["feat", "shape"], ["flat"], name="flat"),  # (1, C, N)
    ]
    inits = [w, shape]
    parts = []
    for c in range(channels):  # one slice per channel keeps the builder trivial; the graph stays small
        lo, hi = f"lo{c}", f"hi{c}"
        inits += [
            numpy_helper.from_array(np.array([c], np.int64), lo),
            numpy_helper.from_array(np.array([c + 1], np.int64), hi),
        ]
        nodes.append(helper.make_node("Slice", ["flat", lo, hi, "ax1"], [f"ch{c}"], name=f"slice{c}"))
        name = f"ch{c}"
        if c in sigmoid:
            nodes.append(helper.make_node("Sigmoid", [name], [f"sig{c}"], name=f"sig{c}"))
            nodes.append(
                helper.make_node("Cast", [f"sig{c}"], [f"cast{c}"], name=f"cast{c}", to=TensorProto.FLOAT)
            )
            name = f"cast{c}"
        parts.append(name)
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "ax1"))
    nodes.append(helper.make_node("Concat", parts, ["output0"], name="cat", axis=1))
    extra_inputs = {  # valid side branches whose results nothing reads: only their op type matters
        "QuantizeLinear": {"images": None, "q_scale": np.array(0.1, np.float32)},
        "NonMaxSuppression": {
            "nms_boxes": np.zeros((1, 4, 4), np.float32),
            "nms_scores": np.zeros((1, 1, 4), np.float32),
        },
    }
    for op in ops:
        feeds = extra_inputs[op]
        inits += [numpy_helper.from_array(v, k) for k, v in feeds.items() if v is not None]
        nodes.append(helper.make_node(op, list(feeds), [f"{op}_out"], name=op))
    n = "N" if isinstance(size[0], str) else (size[0] // 8) * (size[1] // 8)
    outputs = [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, channels, n])]
    for name, dims in extra_outputs:
        nodes.append(helper.make_node("Identity", ["feat"], [name], name=f"id_{name}"))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *size])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def pose_channels(k: int, vis_sigmoid: bool = True) -> tuple[int, list[int]]:
    c = 5 + 3 * k
    return c, [4] + ([7 + 3 * i for i in range(k)] if vis_sigmoid else [])


def save(model: onnx.ModelProto, tmp_path: Path, name: str = "src.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


runner = CliRunner()


def rejects(
    tmp_path: Path, model: onnx.ModelProto, exc: type[Exception], *fragments: str, **kw: object
) -> str:
    """`export --from-onnx` exits 1 with the library's one-line message; nothing is written."""
    src, out = save(model, tmp_path), tmp_path / "out.onnx"
    with pytest.raises(exc) as info:
        import_onnx(src, out, verify=False, simplify=False, **kw)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, msg
    opts = [a for k, v in kw.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    result = runner.invoke(app, ["export", "--from-onnx", str(src), "--out", str(out), *opts])
    assert (result.exit_code, result.output) == (1, f"error: {msg}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.onnx"]  # nothing left behind
    return msg


# --- probe -------------------------------------------------------------------------------------
def test_probe_marks_exactly_the_post_sigmoid_channels() -> None:
    c, sig = pose_channels(2)
    m = head_graph(c, sig)
    assert sorted(sigmoid_sources(m, "output0")) == sorted(f"sig{i}" for i in sig)  # through Cast and Concat
    p = probe(m, (1, 3, SIZE, SIZE))
    assert p.raw.shape == (1, 11, 64)
    assert np.flatnonzero(p.post_sigmoid).tolist() == [4, 7, 10]


def test_classify_pose_prob_logit_and_ambiguous() -> None:
    rng = np.random.default_rng(SEED)
    raw = rng.normal(0, 3, (1, 56, 64)).astype(np.float32)
    post = np.zeros(56, bool)
    post[[4, *range(7, 56, 3)]] = True
    lay = classify(Probe(raw, post), KptConf.AUTO, "m.onnx")
    assert (lay.num_keypoints, lay.kpt_conf, lay.score_prob) == (17, KptConf.PROB, True)
    post[7::3] = False
    lay = classify(Probe(raw, post), KptConf.AUTO, "m.onnx")
    assert lay.kpt_conf is KptConf.LOGIT and "outside [0, 1]" in lay.kpt_conf_reason
    # Flag contradicting the graph: obeyed, with a note.
    lay = classify(Probe(raw, post), KptConf.PROB, "m.onnx")
    assert lay.kpt_conf is KptConf.PROB and "look like logits" in lay.notes[0]
    raw[:, 7::3] = rng.random((1, 17, 64))  # in [0, 1] without a Sigmoid: cannot tell
    with pytest.raises(ModelFileError, match="pass --kpt-conf logit or --kpt-conf prob"):
        classify(Probe(raw, post), KptConf.AUTO, "m.onnx")
    raw[:, 4] = rng.normal(0, 3, (1, 64))  # score logits, no Sigmoid: one is added
    post[4] = False
    assert not classify(Probe(raw, post), KptConf.LOGIT, "m.onnx").score_prob


# --- metadata facts ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "size", "strides"),
    [(336, (128, 128), (8, 16, 32)), (8400, (640, 640), (8, 16, 32)), (8500, (640, 640), (8, 16, 32, 64)),
     (234, (100, 100), (8, 16, 32)), (4250, (320, 640), (8, 16, 32, 64)), (8400, (320, 640), ()),
     (64, (64, 64), ())],
)  # fmt: skip
def test_infer_strides(n: int, size: tuple[int, int], strides: tuple[int, ...]) -> None:
    assert infer_strides(n, size) == strides


def test_keypoint_meta_defaults_and_checks() -> None:
    names, skel, flip = keypoint_meta(17, None, None, None)
    assert names == COCO_KEYPOINTS and skel == COCO_SKELETON and flip[1:3] == (2, 1)
    assert keypoint_meta(4, None, None, None) == (("kpt_0", "kpt_1", "kpt_2", "kpt_3"), (), (0, 1, 2, 3))
    assert keypoint_meta(2, ("a", "b"), ((0, 1),), (1, 0)) == (("a", "b"), ((0, 1),), (1, 0))
    with pytest.raises(ConfigError, match="3 keypoint names given but the model predicts K = 4"):
        keypoint_meta(4, ("a", "b", "c"), None, None)
    with pytest.raises(ConfigError, match=r"skeleton pair \(0, 4\) is outside 0..3"):
        keypoint_meta(4, None, ((0, 4),), None)
    with pytest.raises(ConfigError, match="not a permutation"):
        keypoint_meta(2, None, None, (0, 0))


def test_generic_k_imports_with_generic_names(tmp_path: Path) -> None:
    c, sig = pose_channels(4)
    rep = import_onnx(save(head_graph(c, sig), tmp_path), tmp_path / "out.onnx", simplify=False, name="hand")
    spec = PoseSpec.from_metadata({p.key: p.value for p in onnx.load(str(rep.path)).metadata_props})
    assert spec.keypoint_names == ("kpt_0", "kpt_1", "kpt_2", "kpt_3") and spec.skeleton == ()
    assert (spec.name, spec.input_size, spec.strides, spec.det_width) == ("hand", (64, 64), (), 18)
    assert rep.check is not None and rep.check.max_box_diff <= 0.01
    assert any("strides unknown" in n for n in rep.notes)
    # The runtime takes K = 4 and unknown strides as they are.
    from edgepose.runtime.estimator import PoseEstimator

    image = (np.random.default_rng(SEED).random((48, 80, 3)) * 255).astype(np.uint8)  # letterboxed to 64
    res = PoseEstimator(rep.path, threads=1)(image, conf=0.0)
    assert res.keypoints.shape[1:] == (4, 3) and len(res.scores) > 0
    assert res.keypoint_names == spec.keypoint_names and res.skeleton == ()


def test_import_needs_no_torch(tmp_path: Path) -> None:
    """Importing a third-party model is torch-free (onnx, onnxruntime, onnxslim, numpy only)."""
    import subprocess
    import sys

    c, sig = pose_channels(17)
    src = save(head_graph(c, sig), tmp_path)
    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] == 'torch': raise ImportError('torch blocked')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "from edgepose.export.importer import import_onnx\n"
        f"r = import_onnx({str(src)!r}, {str(tmp_path / 'out.onnx')!r})\n"
        "print(r.check.detections > 0, 'torch' in sys.modules)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "False"]


# --- rejections (library level; CLI level in tests/e2e/test_import_ultralytics.py) --------------------
def test_rejects_detection_only(tmp_path: Path) -> None:
    rejects(
        tmp_path,
        head_graph(84, list(range(4, 84))),
        ModelFileError,
        "(1, 84, 64)",
        EXPECTED,
        "detection-only",
    )


def test_rejects_inconsistent_k(tmp_path: Path) -> None:
    rejects(
        tmp_path, head_graph(57, [4]), ModelFileError, "(1, 57, 64)", EXPECTED, "C - 5 = 52", "multiple of 3"
    )


def test_rejects_dynamic_size_without_img(tmp_path: Path) -> None:
    c, sig = pose_channels(17)
    msg = rejects(
        tmp_path, head_graph(c, sig, size=("height", "width")), ExportError, "(B, 3, height, width)", "--img"
    )
    assert "expected static (B, 3, H, W)" in msg


def test_rejects_segmentation_two_outputs_and_one_output(tmp_path: Path) -> None:
    two = head_graph(38, [4, 5], extra_outputs=[("output1", [1, 32, 16, 16])])
    rejects(tmp_path, two, ModelFileError, "segmentation", "(1, 32, 16, 16)", EXPECTED)
    rejects(tmp_path, head_graph(38, [4, 5]), ModelFileError, "segmentation", "(1, 38, 64)", "2 class scores")


def test_rejects_other_multi_output(tmp_path: Path) -> None:
    c, sig = pose_channels(17)
    m = head_graph(c, sig, extra_outputs=[("aux", [1, 56, 8, 8])])
    rejects(tmp_path, m, ModelFileError, "2 outputs", "'aux' (1, 56, 8, 8)", "cannot interpret", EXPECTED)


def test_rejects_edgepose_model_nms_and_quantized(tmp_path: Path) -> None:
    c, sig = pose_channels(17)
    m = head_graph(c, sig)
    m.metadata_props.add(key="edgepose.input_size", value="[64, 64]")
    rejects(tmp_path, m, ModelFileError, "already an edgepose model")
    rejects(tmp_path, head_graph(c, sig, ops=("NonMaxSuppression",)), ModelFileError, "NonMaxSuppression")
    rejects(tmp_path, head_graph(c, sig, ops=("QuantizeLinear",)), ModelFileError, "already quantized")


def test_rejects_end2end_output_of_unsupported_width(tmp_path: Path) -> None:
    # 300 rows of 64 values: end-to-end rows (wrapped since issue 19), but 64 - 6 is not K x 3
    m = head_graph(300, [4])
    rejects(
        tmp_path,
        m,
        ModelFileError,
        "(1, 300, 64) looks like an end-to-end output whose 58 values",
        "(B, N, 6 + 3K)",
    )


def test_end2end_layout_option_on_a_raw_output_names_the_shape(tmp_path: Path) -> None:
    c, sig = pose_channels(17)
    want = ("--layout ultralytics-pose-e2e expects (B, N, 6 + 3K)", "the output is (1, 56, 64); use --layout")
    rejects(tmp_path, head_graph(c, sig), ModelFileError, *want, layout="ultralytics-pose-e2e")


def test_rejects_bad_options(tmp_path: Path) -> None:
    c, sig = pose_channels(17)
    rejects(tmp_path, head_graph(c, sig), ExportError, "--img 96 does not match", "(B, 3, 64, 64)", img=96)
    rejects(tmp_path, head_graph(c, sig), ExportError, "--iou 1.5 is out of range", iou=1.5)


def test_old_opset_and_other_input_name_are_normalised(tmp_path: Path) -> None:
    import onnxruntime as ort

    c, sig = pose_channels(17)
    m = head_graph(c, sig)
    m.opset_import[0].version = 11
    m.graph.input[0].name = "input.1"
    m.graph.node[0].input[0] = "input.1"
    m.graph.node[-1].output[0] = m.graph.output[0].name = "detections"  # a name the contract needs
    rep = import_onnx(save(m, tmp_path), tmp_path / "out.onnx", simplify=False)
    assert rep.opset == 17 and "converted from opset 11 to 17" in rep.notes
    out = onnx.load(str(rep.path))
    assert out.graph.input[0].name == "images" and out.ir_version == 8
    x = np.random.default_rng(SEED).random((1, 3, SIZE, SIZE), dtype=np.float32)
    sess = ort.InferenceSession(str(rep.path), providers=["CPUExecutionProvider"])
    det, num = sess.run(None, {"images": x, "score_threshold": np.array(0.0, np.float32)})
    assert det.shape == (1, 100, 6 + 51) and 0 < num[0] <= 64
    assert rep.check is not None and rep.check.detections > 0


def test_rejects_unreadable_and_invalid_files(tmp_path: Path) -> None:
    junk = tmp_path / "src.onnx"
    junk.write_bytes(b"\x08\x07not a protobuf at all")
    with pytest.raises(ModelFileError, match="is not a readable ONNX file"):
        import_onnx(junk, tmp_path / "out.onnx")
    c, sig = pose_channels(17)
    m = head_graph(c, sig)
    m.graph.node[0].input[1] = "missing_weight"  # a dangling input: the source itself is broken
    rejects(tmp_path, m, ModelFileError, "is not a valid ONNX model", "missing_weight")


def test_layout_option_is_a_closed_set(tmp_path: Path) -> None:
    c, sig = pose_channels(17)
    src = save(head_graph(c, sig), tmp_path)
    with pytest.raises(ExportError, match="--layout 'yolox' is not supported; use one of: ultralytics-pose"):
        import_onnx(src, tmp_path / "out.onnx", layout="yolox")
    result = runner.invoke(app, ["export", "--from-onnx", str(src), "--layout", "yolox"])
    assert result.exit_code == 2 and "ultralytics-pose" in result.output


def test_cli_takes_exactly_one_source(tmp_path: Path) -> None:
    c, sig = pose_channels(17)
    src = save(head_graph(c, sig), tmp_path)
    out = str(tmp_path / "out.onnx")
    one = "error: pass exactly one of --weights CKPT or --from-onnx MODEL.onnx\n"
    assert (lambda r: (r.exit_code, r.output))(runner.invoke(app, ["export", "--out", out])) == (1, one)
    both = runner.invoke(app, ["export", "--weights", str(src), "--from-onnx", str(src), "--out", out])
    assert (both.exit_code, both.output) == (1, one)
    nms = runner.invoke(app, ["export", "--from-onnx", str(src), "--out", out, "--no-nms"])
    assert (nms.exit_code, nms.output) == (
        1, "error: --no-nms applies to --weights only; --from-onnx keeps the source's batch and opset\n"
    )  # fmt: skip
    kc = runner.invoke(app, ["export", "--weights", str(src), "--out", out, "--kpt-conf", "prob"])
    assert (kc.exit_code, kc.output) == (1, "error: --layout and --kpt-conf apply to --from-onnx only\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.onnx"]
