"""`export --from-onnx`: a toy Ultralytics-layout pose model, wrapped, run, quantized and benched.

The toy reproduces the Ultralytics Pose head's export path exactly: per-level maps flattened and
concatenated, boxes decoded from distances to xywh in input pixels (dist2bbox), the person score
post-sigmoid, keypoints decoded as (raw * 2 + anchor - 0.5) * stride with the visibility sigmoid
applied inside the graph — or left as logits in the pre-sigmoid variant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgepose.export.reference import reference_detections
from tests.helpers.ultralytics_toy import SEED, SIZE, K, export_toy

CONF = 0.3  # the baked score threshold of the imports below
N_128 = 16 * 16 + 8 * 8 + 4 * 4  # candidates at 128 px, strides 8, 16, 32


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x.astype(np.float64), -80, 80)))).astype(np.float32)


def numpy_decode(raw: np.ndarray, vis_logit: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The test's own reading of the Ultralytics layout: (B, 5 + 3K, N) -> boxes, scores, kpts."""
    x = raw.transpose(0, 2, 1).astype(np.float32)  # (B, N, C)
    cx, cy, w, h = (x[..., i] for i in range(4))
    boxes = np.stack([cx - w * np.float32(0.5), cy - h * np.float32(0.5), cx + w * np.float32(0.5),
                      cy + h * np.float32(0.5)], -1)  # fmt: skip  # (B, N, 4)
    kpts = x[..., 5:].reshape(x.shape[0], x.shape[1], -1, 3).copy()  # (B, N, K, 3)
    if vis_logit:
        kpts[..., 2] = sigmoid(kpts[..., 2])
    return boxes, x[..., 4], kpts.reshape(x.shape[0], x.shape[1], -1)  # (B, N, 3K)


def scenes(n: int, size: int, seed: int = SEED) -> np.ndarray:
    """(n, 3, S, S) float RGB [0, 1] synthetic scenes."""
    from edgepose.data.synth import render_sample

    imgs = [render_sample(seed, i, size).image[:, :, ::-1].transpose(2, 0, 1) for i in range(n)]
    return np.stack(imgs).astype(np.float32) / np.float32(255.0)


def run_both(src: Path, wrapped: Path, x: np.ndarray, **feeds: np.ndarray) -> tuple[np.ndarray, ...]:
    import onnxruntime as ort

    raw = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    sess = ort.InferenceSession(str(wrapped), providers=["CPUExecutionProvider"])
    det, num = sess.run(["detections", "num_detections"], {"images": x, **feeds})
    return raw, det, num


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, object]]:
    """{'prob': (source, wrapped, report), 'logit': ...} at 128 px, batch 1."""
    from edgepose.export.importer import import_onnx

    out = {}
    for kind in ("prob", "logit"):
        d = tmp_path_factory.mktemp(f"ultra_{kind}")
        src = export_toy(d / "yolo-toy-pose.onnx", vis_logit=kind == "logit")
        rep = import_onnx(src, d / "wrapped.onnx", conf=CONF, iou=0.45, max_det=100)
        out[kind] = (src, rep.path, rep)
    return out


@pytest.mark.parametrize("kind", ["prob", "logit"])
def test_wrapped_detections_equal_numpy_reference(imported: dict, kind: str) -> None:
    src, wrapped, rep = imported[kind]
    assert rep.kpt_conf.value == kind and rep.kpt_conf_reason.startswith("auto")
    assert rep.source_shape == (1, 5 + 3 * K, N_128)
    assert rep.check is not None and rep.check.detections > 0
    total = 0
    for i, x in enumerate(scenes(3, SIZE)):
        raw, det, num = run_both(src, wrapped, x[None])
        (want,) = reference_detections(*numpy_decode(raw, kind == "logit"), conf=CONF, iou=0.45, max_det=100)
        assert num[0] == len(want), f"scene {i}"
        assert 3 <= len(want) < 100  # the toy is lively: NMS has real work, below the cap
        np.testing.assert_allclose(det[0, : num[0], :4], want[:, :4], atol=0.01)
        np.testing.assert_allclose(
            det[0, : num[0], 6:].reshape(-1, K, 3)[..., :2], want[:, 6:].reshape(-1, K, 3)[..., :2], atol=0.01
        )
        np.testing.assert_allclose(det[0, : num[0], 4], want[:, 4], atol=1e-5)
        np.testing.assert_allclose(
            det[0, : num[0], 6:].reshape(-1, K, 3)[..., 2], want[:, 6:].reshape(-1, K, 3)[..., 2], atol=1e-5
        )
        assert not det[0, num[0] :].any()  # zero padding
        total += int(num[0])
    assert total > 10


def test_threshold_overrides_at_run_time(imported: dict) -> None:
    src, wrapped, _ = imported["prob"]
    x = scenes(1, SIZE, seed=SEED + 1)
    counts = []
    for thr in (CONF, 0.4, 0.5):
        raw, det, num = run_both(src, wrapped, x, score_threshold=np.array(thr, np.float32))
        (want,) = reference_detections(*numpy_decode(raw, False), conf=thr, iou=0.45, max_det=100)
        assert num[0] == len(want)
        np.testing.assert_allclose(det[0, : num[0], :6], want[:, :6], atol=0.01)
        counts.append(int(num[0]))
    assert counts[0] > counts[1] > counts[2]
    _, det, num = run_both(src, wrapped, x, max_detections=np.array(2, np.int64))
    assert num[0] == 2 and not det[0, 2:].any()
    _, _, num_iou = run_both(src, wrapped, x, iou_threshold=np.array(0.9, np.float32))
    assert num_iou[0] > counts[0]  # looser NMS keeps more


def test_metadata_and_graph_contract(imported: dict) -> None:
    from edgepose.export.importer.graph import IMPORT_PREFIX
    from edgepose.onnxkit.model import spec_of
    from edgepose.spec import COCO_KEYPOINTS, TAIL_PREFIX, GraphKind, Precision

    _, wrapped, rep = imported["logit"]
    m = onnx.load(str(wrapped))
    spec = spec_of(m)
    assert spec == rep.spec
    assert (spec.name, spec.input_size, spec.strides, spec.letterbox_color) == (
        "yolo-toy-pose",
        (128, 128),
        (8, 16, 32),
        114,
    )
    assert (
        spec.keypoint_names == COCO_KEYPOINTS
        and spec.graph is GraphKind.END2END
        and spec.precision is Precision.FLOAT
    )
    assert m.ir_version <= 10 and m.graph.input[0].name == "images"
    assert [o.name for o in m.graph.output] == ["detections", "num_detections"]
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("NonMaxSuppression") == 1
    tail = [n for n in m.graph.node if n.name.startswith(TAIL_PREFIX)]
    # logit variant: one Sigmoid in the tail, for the visibility (the score is post-sigmoid already)
    assert [n.op_type for n in tail].count("Sigmoid") == 1
    assert next(n for n in tail if n.name.startswith(IMPORT_PREFIX)).op_type == "Transpose"
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    assert len(convs) == 14 and not any(n.name.startswith(TAIL_PREFIX) for n in convs)
    assert rep.nodes.tail == len([n for n in m.graph.node if n.name.startswith(TAIL_PREFIX)])


def test_runtime_estimator_reads_the_import(imported: dict) -> None:
    from edgepose.runtime.estimator import PoseEstimator

    src, wrapped, _ = imported["prob"]
    x = scenes(1, SIZE, seed=SEED + 2)
    _, det, num = run_both(src, wrapped, x)
    bgr = np.ascontiguousarray((x[0].transpose(1, 2, 0)[:, :, ::-1] * 255).round().astype(np.uint8))
    res = PoseEstimator(wrapped, threads=1)(bgr)  # 128 x 128: letterbox is the identity
    assert len(res.scores) == num[0] > 0
    rows = det[0, : num[0]]
    np.testing.assert_allclose(
        res.boxes, np.clip(rows[:, :4], 0, SIZE), atol=0.01
    )  # runtime clips to the image
    kpts = rows[:, 6:].reshape(-1, K, 3)  # (n, K, 3)
    np.testing.assert_allclose(res.keypoints[..., :2], np.clip(kpts[..., :2], 0, SIZE), atol=0.01)
    np.testing.assert_allclose(res.keypoints[..., 2], kpts[..., 2], atol=1e-6)
    np.testing.assert_allclose(res.scores, rows[:, 4], atol=1e-6)


def test_dynamic_source_needs_img_then_imports(tmp_path: Path) -> None:
    from edgepose.errors import ExportError
    from edgepose.export.importer import import_onnx

    src = export_toy(tmp_path / "dyn.onnx", size=96, dynamic=True, k=4, vis_logit=True)
    with pytest.raises(ExportError, match=r"dynamic spatial size \(B, 3, height, width\).*--img"):
        import_onnx(src, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()
    rep = import_onnx(src, tmp_path / "out.onnx", img=(96, 160), max_det=20)
    n = 12 * 20 + 6 * 10 + 3 * 5
    assert rep.source_shape == (1, 5 + 12, n) and rep.spec.input_size == (96, 160)
    assert rep.spec.strides == (8, 16, 32) and rep.spec.keypoint_names[-1] == "kpt_3"
    x = scenes(1, 160, seed=SEED + 3)[:, :, 32:128]  # (1, 3, 96, 160)
    raw, det, num = run_both(src, rep.path, np.ascontiguousarray(x))
    (want,) = reference_detections(*numpy_decode(raw, True), conf=0.25, iou=0.45, max_det=20)
    assert det.shape == (1, 20, 18) and num[0] == len(want) > 0
    np.testing.assert_allclose(det[0, : num[0]], want, atol=0.01)
    # The batch stays dynamic: two images at once, each with its own detections.
    x2 = np.ascontiguousarray(scenes(2, 160, seed=SEED + 4)[:, :, 32:128])  # (2, 3, 96, 160)
    raw, det, num = run_both(src, rep.path, x2)
    want = reference_detections(*numpy_decode(raw, True), conf=0.25, iou=0.45, max_det=20)
    assert det.shape == (2, 20, 18) and [len(w) for w in want] == num.tolist() and num.min() > 0
    for b in range(2):
        np.testing.assert_allclose(det[b, : num[b]], want[b], atol=0.01)


def test_quantize_8bit_and_mixed_then_bench(imported: dict, tmp_path: Path, synth_dataset: Path) -> None:
    """The import goes through `quantize` (int8, mixed) and `bench` unchanged; the tail stays float."""
    import cv2

    from edgepose.bench.run import run_bench
    from edgepose.data.synth import render_sample
    from edgepose.export.importer.graph import IMPORT_PREFIX
    from edgepose.quant.quantize import quantize_model
    from edgepose.spec import TAIL_PREFIX, Precision

    _, wrapped, _ = imported["prob"]
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(8):
        cv2.imwrite(str(calib / f"{i:03d}.png"), render_sample(SEED + 5, i, SIZE).image)
    q8 = quantize_model(wrapped, calib, tmp_path / "m.int8.onnx", precision=Precision.INT8, threads=1)
    qm = quantize_model(
        wrapped, calib, tmp_path / "m.mixed.onnx", precision=Precision.MIXED, threads=1, num_probe_images=4
    )
    # Layers are the source's own convs, ranked by measured sensitivity (no edgepose layer names involved).
    assert [r.name for r in q8.layers] == [r.name for r in qm.layers] and len(qm.layers) == 14
    assert sorted(r.rank for r in qm.layers) == list(range(1, 15))
    k = len(qm.high_precision_layers())  # at most floor(0.3 x 14) = 4; fewer when fewer measure better
    assert k <= 4 and set(qm.high_precision_layers()) == {r.name for r in qm.layers if r.rank <= k}
    assert 0 < q8.raw_nmse < 1e-3
    assert qm.fidelity is not None and q8.fidelity is not None and qm.fidelity.drop <= q8.fidelity.drop
    for path in (tmp_path / "m.int8.onnx", tmp_path / "m.mixed.onnx"):
        m = onnx.load(str(path))
        tail = [n for n in m.graph.node if n.name.startswith(TAIL_PREFIX)]
        assert len(tail) > 30 and not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in tail)
        prod = {o: n for n in m.graph.node for o in n.output}
        first = next(n for n in tail if n.name == IMPORT_PREFIX + "bnc")  # the adapter reads float
        assert prod[first.input[0]].op_type != "DequantizeLinear"
        assert sum(n.op_type == "QuantizeLinear" for n in m.graph.node) >= 14
    # Detections of the int8 import stay close to float on a scene.
    x = scenes(1, SIZE, seed=SEED + 6)
    _, det_f, num_f = run_both(wrapped, wrapped, x)
    _, det_q, num_q = run_both(wrapped, tmp_path / "m.int8.onnx", x)
    # 8-bit scores move by ~1e-3: a few candidates near the threshold or an IoU flip change the count.
    assert abs(int(num_q[0]) - int(num_f[0])) <= 0.15 * num_f[0]
    bf, bq = det_f[0, : num_f[0], :4], det_q[0, : num_q[0], :4]  # (n, 4) each
    lt, rb = np.maximum(bf[:, None, :2], bq[None, :, :2]), np.minimum(bf[:, None, 2:], bq[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)  # (n_f, n_q)
    area = lambda b: np.prod(b[:, 2:] - b[:, :2], -1)  # noqa: E731
    best_iou = (inter / (area(bf)[:, None] + area(bq)[None] - inter)).max(1)  # (n_f,)
    assert np.median(best_iou) > 0.95

    res = run_bench(
        [wrapped, tmp_path / "m.int8.onnx", tmp_path / "m.mixed.onnx"], synth_dataset, threads=1, runs=3,
        warmup=1, num_images=4, cache_dir=tmp_path / "cache",
    )  # fmt: skip
    rows = {r.variant: r for r in res.rows}
    assert set(rows) == {Precision.FLOAT, Precision.INT8, Precision.MIXED}
    assert all(r.num_images == 4 and r.p50_ms > 0 and r.input_size == (SIZE, SIZE) for r in res.rows)
    assert all(0.0 <= r.ap <= 1.0 and r.delta_ap is not None for r in res.rows)
    assert rows[Precision.FLOAT].kernels.float_layers == 14 and rows[Precision.FLOAT].layers_16bit_pct is None
    assert rows[Precision.INT8].layers_16bit_pct == 0.0
    assert rows[Precision.MIXED].layers_16bit_pct == pytest.approx(100 * k / 14)


def test_cli_from_onnx_writes_the_same_model_and_says_what_it_did(imported: dict, tmp_path: Path) -> None:
    import re

    from typer.testing import CliRunner

    from edgepose.cli import app
    from edgepose.onnxkit.model import spec_of

    src, _, rep = imported["logit"]
    out = tmp_path / "cli.onnx"
    r = CliRunner().invoke(app, ["export", "--from-onnx", str(src), "--out", str(out), "--conf", str(CONF)])
    assert r.exit_code == 0, r.output
    assert (
        f"end2end graph from ultralytics-pose output (1, 56, {N_128}), K = 17, 128x128 float input"
        in r.output
    )
    assert "keypoint visibility: logit (auto: no Sigmoid before the visibility channels" in r.output
    diffs = re.search(
        r"match the NumPy reference decode \+ NMS; max diff box (\S+) px, keypoints (\S+) px", r.output
    )
    assert diffs is not None and max(float(diffs[1]), float(diffs[2])) <= 0.01
    assert spec_of(onnx.load(str(out))) == rep.spec
