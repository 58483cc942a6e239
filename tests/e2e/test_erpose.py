"""ER-Pose end to end (issue 19): erpose-tiny overfits a few synthetic images, the NMS-free export matches
PyTorch, `edgepose val` agrees, int8 quantization and the runtime take the file, and the YOLO-Pose-only
options get one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from edgepose.cli import app

torch.set_num_threads(1)
NUM_IMAGES = 6
EPOCHS = 200  # one full-batch step per epoch, as the YOLO-Pose overfit test
START_AP_MAX = 0.05
END_AP_MIN = 0.45  # measured 0.716 (lr 0.05, 200 steps; edgepose-tiny: 0.380 on the same images)
runner = CliRunner()


@pytest.fixture(scope="module")
def overfit(synth_dataset_factory: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    from edgepose.data.convert import read_dataset
    from edgepose.nn.config import resolve_config
    from edgepose.nn.model import build_model
    from edgepose.train.augment import AugmentConfig
    from edgepose.train.evaluate import evaluate_model
    from edgepose.train.loop import TrainOptions, train

    # version 1: keypoints on every person (see test_overfit.py); same images as the YOLO-Pose test
    root = synth_dataset_factory(num_images=NUM_IMAGES, size=128, seed=101, version=1)
    data = read_dataset(root)
    cfg = resolve_config("erpose-tiny")
    torch.manual_seed(0)
    start = evaluate_model(build_model(cfg), data, 128)["ap"]
    opts = TrainOptions(
        epochs=EPOCHS, batch=NUM_IMAGES, img=128, workers=0, lr0=0.05, warmup_epochs=3, close_mosaic=0,
        aug=AugmentConfig(mosaic=0.0, scale=(1.0, 1.0), translate=0.0, flip=0.0, hsv=(0.0, 0.0, 0.0)),
        val_every=EPOCHS, seed=0,
    )  # fmt: skip
    run = tmp_path_factory.mktemp("erpose_run")
    result = train(cfg, data, data, run / "run", opts)
    return {"root": root, "data": data, "start": start, "result": result, "best": run / "run" / "best.pt"}


@pytest.mark.slow
def test_erpose_tiny_overfits_a_few_images(overfit: dict, tmp_path: Path) -> None:
    res = overfit["result"]
    assert overfit["start"] < START_AP_MAX
    assert res.metrics["ap"] > END_AP_MIN, res.history[-1]
    first, last = res.history[0], res.history[-1]
    assert set(first) >= {"loss_oks", "loss_kconf", "loss_conf_o2m", "loss_conf_o2o"}
    assert last["loss_oks"] < 0.2 * first["loss_oks"]
    out = tmp_path / "val.json"
    cli = runner.invoke(app, ["val", "--weights", str(overfit["best"]), "--data", str(overfit["root"]),
                              "--json", str(out)])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert json.loads(out.read_text())["ap"] == pytest.approx(res.metrics["ap"], abs=1e-6)


@pytest.mark.slow
def test_nms_free_export_matches_pytorch(overfit: dict, tmp_path: Path) -> None:
    import onnxruntime as ort

    from edgepose.export.exporter import export_model
    from edgepose.export.selfcheck import sample_images
    from edgepose.nn.checkpoint import load_checkpoint
    from edgepose.nn.erpose import decode_erpose
    from edgepose.topk import topk_select

    rep = export_model(overfit["best"], tmp_path / "er.onnx", conf=0.001, max_det=100)
    assert rep.verify is not None and rep.verify.detections > 0
    assert rep.max_kpt_diff < 0.01 and rep.verify.max_prob_diff < 1e-4
    m = onnx.load(str(rep.path))
    ops = [n.op_type for n in m.graph.node]
    assert "NonMaxSuppression" not in ops and ops.count("TopK") == 1 and rep.nodes.nms == 0
    assert [i.name for i in m.graph.input] == ["images", "score_threshold", "max_detections"]
    # independently of the built-in check: the training images through both, at the evaluation setting
    model = load_checkpoint(overfit["best"]).model
    images = sample_images(2, (128, 128))
    sess = ort.InferenceSession(str(rep.path), providers=["CPUExecutionProvider"])
    compared = 0
    for img in images:
        det, num = sess.run(None, {"images": img[None].astype(np.float32) / np.float32(255)})
        with torch.no_grad():
            boxes, scores, kpts = decode_erpose(
                model(torch.from_numpy(img[None]).float() / 255), model.strides
            )
        keep = topk_select(scores[0].numpy(), 0.001, 100)
        assert num[0] == len(keep) > 0
        got = det[0, : num[0]]
        np.testing.assert_allclose(got[:, 4], scores[0, keep].numpy(), atol=1e-5)
        np.testing.assert_allclose(got[:, 6:].reshape(-1, 17, 3), kpts[0, keep].numpy(), atol=0.01)
        confident = (np.abs(kpts[0, keep, :, 2].numpy() - 0.5) > 1e-3).all(1)  # box rule away from its edge
        np.testing.assert_allclose(got[confident, :4], boxes[0, keep][confident].numpy(), atol=0.01)
        compared += int(num[0])
    assert compared >= 10


@pytest.mark.slow
def test_int8_quantization_and_runtime(overfit: dict, tmp_path: Path) -> None:
    import cv2

    from edgepose.export.exporter import export_model
    from edgepose.quant.quantize import quantize_model
    from edgepose.runtime import PoseEstimator
    from edgepose.spec import Precision

    rep = export_model(overfit["best"], tmp_path / "er.onnx")
    calib = overfit["root"] / "images"
    q = quantize_model(rep.path, calib, tmp_path / "er.int8.onnx", precision=Precision.INT8)
    qm = onnx.load(q.output)
    assert any(n.op_type == "QuantizeLinear" for n in qm.graph.node)
    assert not any(n.op_type == "QuantizeLinear" and n.name.startswith("ep_tail/") for n in qm.graph.node)
    image = cv2.imread(str(calib / "000000.jpg"))
    f32, i8 = PoseEstimator(rep.path, threads=1)(image), PoseEstimator(q.output, threads=1)(image, iou=0.5)
    assert len(f32.scores) > 0 and len(i8.scores) > 0
    assert PoseEstimator(q.output, threads=1).spec.precision is Precision.INT8


def test_yolo_pose_only_options_are_one_line_errors(tiny_erpose_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    r = runner.invoke(
        app, ["export", "--weights", str(tiny_erpose_checkpoint), "--out", str(out), "--no-nms"]
    )
    assert (r.exit_code, r.output) == (
        1,
        f"error: --no-nms (the raw-head layout) is a YOLO-Pose option; {tiny_erpose_checkpoint} is an "
        "ER-Pose model (erpose-tiny) whose graph has no NMS to leave out: drop --no-nms\n",
    )
    data = tmp_path / "d"
    from edgepose.data.synth import synthesize

    synthesize(data, 2, size=64, seed=109)
    for opt, val in (("--kpt-l1", "0.5"), ("--kpt-weight", "1.0")):
        r = runner.invoke(app, ["train", "--config", "erpose-tiny", "--data", str(data), "--out",
                                str(tmp_path / "run"), opt, val])  # fmt: skip
        assert (r.exit_code, r.output) == (
            1,
            f"error: {opt} is a YOLO-Pose loss option; erpose-tiny has the ER-Pose head, whose loss has its "
            f"own weights: drop {opt}\n",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_cli_trains_erpose_tiny(tmp_path: Path) -> None:
    from edgepose.data.synth import synthesize
    from edgepose.nn.checkpoint import load_checkpoint
    from edgepose.nn.config import HeadKind

    data = synthesize(tmp_path / "d", 2, size=64, seed=109)
    args = ["--data", str(data), "--val", str(data), "--out", str(tmp_path / "run"), "--epochs", "1",
            "--img", "64", "--batch", "2", "--workers", "0", "--mosaic", "0"]  # fmt: skip
    r = runner.invoke(app, ["train", "--config", "erpose-tiny", *args])
    assert r.exit_code == 0, r.output
    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ck.cfg.head is HeadKind.ERPOSE and ck.epoch == 1
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert set(rows[0]) >= {"loss_oks", "loss_conf_o2o", "val_ap"}


def test_predict_says_iou_is_ignored_on_an_nms_free_graph(
    tiny_erpose_checkpoint: Path, tmp_path: Path
) -> None:
    import cv2

    from edgepose.export.exporter import export_model
    from edgepose.runtime import PoseEstimator
    from edgepose.spec import IOU_THR_NAME, SCORE_THR_NAME

    rep = export_model(tiny_erpose_checkpoint, tmp_path / "er.onnx", verify=False)
    est = PoseEstimator(rep.path, threads=1)
    assert est.supports_override(SCORE_THR_NAME) and not est.supports_override(IOU_THR_NAME)
    image = tmp_path / "a.jpg"
    cv2.imwrite(str(image), np.full((96, 128, 3), 127, np.uint8))
    r = runner.invoke(
        app, ["predict", str(rep.path), str(image), "--out", str(tmp_path / "p"), "--iou", "0.5"]
    )
    assert r.exit_code == 0, r.output
    assert (
        f"warning: {rep.path} has no iou_threshold input: --iou 0.5 is ignored (an NMS-free graph suppresses "
        "nothing)" in " ".join(r.output.split())
    )


def test_raw_outputs_pair_by_name_not_graph_order(tiny_erpose_checkpoint: Path, tmp_path: Path) -> None:
    """A quantized ER-Pose copy lists its tail inputs in another graph order than the float model (measured:
    raw-output NMSE 282 instead of 1.03 before raw_outputs took `names`)."""
    from edgepose.export.exporter import export_model
    from edgepose.quant.fidelity import nmse
    from edgepose.quant.graph import raw_head_outputs
    from edgepose.quant.ortsteps import raw_outputs

    model = onnx.load(export_model(tiny_erpose_checkpoint, tmp_path / "er.onnx", verify=False).path)
    names = raw_head_outputs(model)
    assert [n.split("_s")[0] for n in names[:2]] == ["er_conf", "er_pose"]
    images = [np.random.default_rng(150).random((1, 3, 128, 128), dtype=np.float32)]
    (ref,) = raw_outputs(model, images, names=names)
    (rev,) = raw_outputs(model, images, names=names[::-1])
    assert [r.shape for r in rev] == [r.shape for r in ref][::-1]
    assert nmse([rev[::-1]], [ref]) == 0.0
