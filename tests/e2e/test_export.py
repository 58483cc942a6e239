"""End-to-end export of the tiny model: parity with PyTorch + reference NMS, run-time overrides, contract."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgepose import __version__
from edgepose.errors import ExportError
from edgepose.export.reference import reference_detections
from edgepose.export.selfcheck import sample_images
from edgepose.export.verify import _with_candidate_outputs, torch_candidates, verify_export
from edgepose.nms import nms
from edgepose.onnxkit.model import spec_of
from edgepose.runtime.preprocess import to_input
from edgepose.spec import (
    DETECTIONS_NAME,
    INPUT_NAME,
    IOU_THR_NAME,
    MAX_DET_NAME,
    NUM_DETS_NAME,
    SCORE_THR_NAME,
    TAIL_PREFIX,
    GraphKind,
    InputFormat,
    PoseSpec,
    Precision,
)
from tests.fixtures_export import make_lively_model

torch.set_num_threads(1)
IMAGE_SEED = 110


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return make_lively_model()  # the unfused PyTorch model the fixtures exported


def _session_from_model(m: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.log_severity_level = 1, 3
    return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _session(path: Path) -> ort.InferenceSession:
    return _session_from_model(onnx.load(str(path)))


@functools.cache
def _candidate_session(path: Path) -> tuple[PoseSpec, ort.InferenceSession]:
    """The graph with the tensors its NMS reads (boxes, scores, kpts) as extra outputs."""
    m = onnx.load(str(path))
    return spec_of(m), _session_from_model(_with_candidate_outputs(m))


def _parity(path: Path, model: torch.nn.Module, images: np.ndarray, conf: float) -> dict[str, float]:
    """Run the graph (its NMS candidates exposed) and PyTorch + nn.decode on uint8 images (B, 3, H, W);
    assert the in-graph NMS is exact; return max diffs and how many images keep PyTorch's detections."""
    spec, sess = _candidate_session(path)
    det, num, boxes_o, scores_o = sess.run(
        None, {INPUT_NAME: to_input(images, spec.input_format), SCORE_THR_NAME: np.array(conf, np.float32)}
    )
    boxes_t, scores_t, kpts_t = torch_candidates(model, images)
    out = {"box": float(np.abs(boxes_o - boxes_t).max()), "score": float(np.abs(scores_o - scores_t).max())}
    out.update(kpt=0.0, kpt_conf=0.0, same=0, rows=0)
    for i in range(len(images)):
        keep = nms(
            boxes_o[i], scores_o[i], spec.iou_threshold, conf, spec.max_det
        )  # on the graph's candidates
        assert int(num[i]) == len(keep)
        np.testing.assert_array_equal(det[i, : num[i], :4], boxes_o[i, keep])  # the in-graph NMS is exact
        np.testing.assert_array_equal(det[i, : num[i], 4], scores_o[i, keep])
        assert not det[i, : num[i], 5].any() and not det[i, num[i] :].any()  # class 0, zero padding
        kd = np.abs(det[i, : num[i], 6:] - kpts_t[i, keep]).reshape(len(keep), -1, 3)  # (n, K, 3)
        if len(keep):
            out["kpt"] = max(out["kpt"], float(kd[..., :2].max()))
            out["kpt_conf"] = max(out["kpt_conf"], float(kd[..., 2].max()))
        if np.array_equal(keep, nms(boxes_t[i], scores_t[i], spec.iou_threshold, conf, spec.max_det)):
            out["same"] += 1
            out["rows"] += len(keep)
    return out


@pytest.mark.parametrize(
    ("size", "batch"),
    [((128, 128), 1), ((160, 160), 2), ((96, 128), 1)],
    ids=["128-b1", "160-b2", "96x128-b1"],
)
def test_parity_with_pytorch_and_reference_nms(
    tiny_onnx_factory: Callable[..., Path], model: torch.nn.Module, size: tuple[int, int], batch: int
) -> None:
    path = tiny_onnx_factory() if size == (128, 128) else tiny_onnx_factory(img=size, batch=batch)
    images = sample_images(4, size, seed=IMAGE_SEED)  # (4, 3, H, W), a different scene per item
    same = rows = 0
    for start in range(0, 4, batch):
        for conf in (0.25, 0.001):  # deployment threshold, then the evaluation setting fed at run time
            r = _parity(path, model, images[start : start + batch], conf)
            # every candidate the NMS sees (~1000 per image at 128 px) and every kept pose match PyTorch
            assert r["box"] < 0.01 and r["kpt"] < 0.01 and r["score"] < 1e-4 and r["kpt_conf"] < 1e-4, r
            same, rows = same + r["same"], rows + r["rows"]
    # Same kept detections as PyTorch + reference NMS (count, order, < 0.01 px) for at least 7 of the 8
    # (image, threshold) pairs; the rest may flip one IoU comparison at 1e-4 px rounding (see verify.py).
    assert same >= 7 and rows >= 7 * 80, (same, rows)


def test_score_threshold_override_changes_count_as_reference(tiny_onnx: Path, model: torch.nn.Module) -> None:
    images = sample_images(1, (128, 128), seed=IMAGE_SEED + 1)
    _, scores, _ = torch_candidates(model, images)
    sess = _session(tiny_onnx)
    counts = []
    for conf in (0.25, 0.45, 0.5, 0.55):
        _, num = sess.run(
            None,
            {INPUT_NAME: to_input(images, InputFormat.FLOAT), SCORE_THR_NAME: np.array(conf, np.float32)},
        )
        want = reference_detections(*torch_candidates(model, images), conf=conf, iou=0.45, max_det=100)
        assert int(num[0]) == len(want[0]) <= int((scores[0] > conf).sum())
        counts.append(int(num[0]))
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1] > 0, counts
    det, num = sess.run(
        None, {INPUT_NAME: to_input(images, InputFormat.FLOAT), MAX_DET_NAME: np.array(5, np.int64)}
    )
    assert num.tolist() == [5] and det[0, :5].any() and not det[0, 5:].any()


def test_graph_contract_metadata_and_tail(tiny_onnx: Path) -> None:
    m = onnx.load(str(tiny_onnx))
    spec = spec_of(m)
    assert spec == PoseSpec(
        name="edgepose-tiny",
        input_size=(128, 128),
        strides=(8, 16, 32),
        conf_threshold=0.25,
        iou_threshold=0.45,
        max_det=100,
        graph=GraphKind.END2END,
        precision=Precision.FLOAT,
        version=__version__,
    )
    assert PoseSpec.from_metadata(spec.to_metadata()) == spec
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("NonMaxSuppression") == 1 and "BatchNormalization" not in ops
    tail = [n for n in m.graph.node if n.name.startswith(TAIL_PREFIX)]
    assert not any(n.op_type == "Conv" for n in tail)
    assert {n.op_type for n in tail} >= {"Sigmoid", "NonMaxSuppression", "GatherND", "ScatterND"}
    # The decode is in the tail: a ReLU model has no Sigmoid anywhere else.
    assert all(n.name.startswith(TAIL_PREFIX) for n in m.graph.node if n.op_type == "Sigmoid")
    assert m.ir_version == 8 and m.opset_import[0].version == 17
    # One entry per domain: onnxruntime.quantization rejects a default domain listed twice.
    domains = [imp.domain or "ai.onnx" for imp in m.opset_import]
    assert len(domains) == len(set(domains)), domains
    onnx.checker.check_model(m, full_check=True)
    # Threshold inputs survived simplification: inputs with default initializers, overridable in ORT.
    inits = {i.name for i in m.graph.initializer}
    assert [i.name for i in m.graph.input] == [INPUT_NAME, SCORE_THR_NAME, IOU_THR_NAME, MAX_DET_NAME]
    assert {SCORE_THR_NAME, IOU_THR_NAME, MAX_DET_NAME} <= inits
    sess = _session(tiny_onnx)
    assert {i.name for i in sess.get_overridable_initializers()} == {
        SCORE_THR_NAME,
        IOU_THR_NAME,
        MAX_DET_NAME,
    }
    assert [(o.name, o.shape) for o in sess.get_outputs()] == [
        (DETECTIONS_NAME, [1, 100, 57]),
        (NUM_DETS_NAME, [1]),
    ]


def test_grey_image_above_every_score_gives_no_detections(tiny_onnx: Path, model: torch.nn.Module) -> None:
    grey = np.full((1, 3, 128, 128), 114, np.uint8)
    _, scores, _ = torch_candidates(model, grey)
    thr = float(scores.max()) + 1e-3
    det, num = _session(tiny_onnx).run(
        None, {INPUT_NAME: to_input(grey, InputFormat.FLOAT), SCORE_THR_NAME: np.array(thr, np.float32)}
    )
    assert num.tolist() == [0] and det.shape == (1, 100, 57) and not det.any()


def test_uint8_dynamic_batch_opset21_export_verifies_and_matches_float(
    lively_checkpoint: Path, tiny_onnx: Path, tmp_path: Path
) -> None:
    from edgepose.export import export_model

    r = export_model(
        lively_checkpoint, tmp_path / "u8.onnx", opset=21, dynamic_batch=True, input_format=InputFormat.UINT8
    )
    assert (r.opset, r.ir_version, r.nodes.nms, r.spec.input_format) == (21, 10, 1, InputFormat.UINT8)
    v = r.verify
    assert v is not None and v.images == 4 and v.thresholds == (0.25, 0.001)
    assert v.max_box_diff < 0.01 and v.max_kpt_diff < 0.01 and v.max_prob_diff < 1e-4
    assert v.detections >= 4 * 80 and v.borderline <= 1  # pairs compared with PyTorch: 8, at most 1 flipped
    m = onnx.load(str(r.path))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    images = sample_images(3, (128, 128), seed=IMAGE_SEED + 2)
    low = {SCORE_THR_NAME: np.array(0.001, np.float32)}
    sess, ref = _session(r.path), _session(tiny_onnx)
    for bs in (1, 3):  # dynamic batch
        det_u8, num_u8 = sess.run(None, {INPUT_NAME: images[:bs], **low})
        assert det_u8.shape == (bs, 100, 57) and num_u8.shape == (bs,)
    for i in range(3):  # uint8 in-graph conversion == float input (the float graph has batch 1)
        det, num = ref.run(None, {INPUT_NAME: to_input(images[i : i + 1], InputFormat.FLOAT), **low})
        assert num[0] == num_u8[i] == 100
        np.testing.assert_allclose(det_u8[i], det[0], atol=1e-5)


def test_raw_graph_matches_pytorch_head(tiny_onnx_raw: Path, model: torch.nn.Module) -> None:
    m = onnx.load(str(tiny_onnx_raw))
    spec = spec_of(m)
    assert spec.graph is GraphKind.RAW
    assert [o.name for o in m.graph.output] == ["raw_s8", "raw_s16", "raw_s32"]
    assert not any(n.name.startswith(TAIL_PREFIX) for n in m.graph.node) and len(m.graph.input) == 1
    images = sample_images(1, (128, 128), seed=IMAGE_SEED + 3)
    raw = _session(tiny_onnx_raw).run(None, {INPUT_NAME: to_input(images, InputFormat.FLOAT)})
    with torch.no_grad():
        want = model(torch.from_numpy(to_input(images, InputFormat.FLOAT)))
    for got, w, s in zip(raw, want, (8, 16, 32), strict=True):
        assert got.shape == (1, 3, 128 // s, 128 // s, 57)
        np.testing.assert_allclose(got, w.numpy(), atol=2e-4)


def test_verification_catches_a_wrong_graph(tiny_onnx: Path, model: torch.nn.Module) -> None:
    m = onnx.load(str(tiny_onnx))
    spec = spec_of(m)
    for init in m.graph.initializer:
        if init.name == IOU_THR_NAME:  # bake a different IoU than the spec (and the reference) says
            init.CopyFrom(onnx.numpy_helper.from_array(np.array(0.9, np.float32), IOU_THR_NAME))
    with pytest.raises(
        ExportError,
        match=r"the graph's NMS kept 100 detections, the reference NMS on the same candidates kept 100",
    ):
        verify_export(m, model, spec, batch=1, num_images=1)
    ok = verify_export(onnx.load(str(tiny_onnx)), model, spec, batch=1, num_images=1)
    assert ok.detections > 100 and ok.max_box_diff < 0.01 and ok.max_kpt_diff < 0.01


def test_interrupted_write_leaves_nothing(
    lively_checkpoint: Path, tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgepose.export import exporter

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(
        exporter, "build_graph", lambda *a, **k: onnx.load(str(tiny_onnx))
    )  # skip the slow part
    monkeypatch.setattr(onnx, "save_model", boom)
    with pytest.raises(KeyboardInterrupt):
        exporter.export_model(lively_checkpoint, tmp_path / "m.onnx", verify=False)
    assert list(tmp_path.iterdir()) == []
