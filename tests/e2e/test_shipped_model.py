"""The shipped default model, exported and run through the torch-free runtime and `edgepose predict`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgepose.cli import app
from edgepose.data.synth import render_sample
from edgepose.runtime import PoseEstimator
from edgepose.spec import COCO_SIGMAS

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "edgepose-n.pt"
SEED = 150  # test seeds are >= 100; train 1, val 2, calibration 3
NUM_IMAGES = 12
# The stated bar: people at least 35% of the image tall with >= 10 labelled keypoints are found by the
# shipped model with a mean best OKS of at least this much (deployment thresholds). See models/README.md.
MEAN_OKS_BAR = 0.50  # measured 0.585 on the current shipped model (18 people); 0.55, 0.25 on earlier ones


def _oks(gt: np.ndarray, pred: np.ndarray, area: float) -> float:
    """COCO object keypoint similarity of one prediction (K, 3) against one ground truth (K, 3)."""
    labelled = gt[:, 2] > 0
    d2 = ((gt[:, :2] - pred[:, :2]) ** 2).sum(axis=1)
    kappa = 2 * np.asarray(COCO_SIGMAS)
    e = d2 / (2 * area * kappa**2 + np.spacing(1))
    return float(np.exp(-e[labelled]).mean())


@pytest.fixture(scope="module")
def shipped_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgepose.export import export_model

    out = tmp_path_factory.mktemp("shipped") / "edgepose-n.onnx"
    export_model(SHIPPED, out)  # verified against PyTorch while exporting
    return out


def test_shipped_model_finds_the_people(shipped_onnx: Path) -> None:
    est = PoseEstimator(shipped_onnx, threads=1)
    assert est.spec.input_size == (256, 256) and est.spec.name == "edgepose-n"
    best = []
    for i in range(NUM_IMAGES):
        sample = render_sample(SEED, i, 256)
        result = est(sample.image)
        for j in range(len(sample.boxes)):
            tall = sample.boxes[j, 3] - sample.boxes[j, 1] >= 0.35 * 256
            if not tall or (sample.keypoints[j, :, 2] > 0).sum() < 10:
                continue
            scores = [_oks(sample.keypoints[j], kp, sample.areas[j]) for kp in result.keypoints]
            best.append(max(scores, default=0.0))
    assert len(best) >= 10, "the seeded scenes must hold enough large people to judge"
    assert np.mean(best) >= MEAN_OKS_BAR, (np.round(best, 2), np.mean(best))


def test_api_and_predict_json_agree_on_the_shipped_model(shipped_onnx: Path, tmp_path: Path) -> None:
    images = tmp_path / "in"
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"{i:02d}.png"), render_sample(SEED, i, 256).image)  # lossless
    res = CliRunner().invoke(
        app, ["predict", str(shipped_onnx), str(images), "--out", str(tmp_path / "o"), "--save-json"]
    )
    assert res.exit_code == 0, res.output
    cli = json.loads((tmp_path / "o" / "predictions.json").read_text())
    files = json.loads((tmp_path / "o" / "files.json").read_text())
    est = PoseEstimator(shipped_onnx)
    api = []
    for image_id, path in sorted(files.items(), key=lambda kv: int(kv[0])):
        api += est(cv2.imread(path)).to_coco(int(image_id))
    assert len(api) == len(cli) > 0
    for a, c in zip(api, cli, strict=True):
        assert a["image_id"] == c["image_id"]
        np.testing.assert_allclose(a["keypoints"], c["keypoints"], atol=0.01)
        np.testing.assert_allclose(a["bbox"], c["bbox"], atol=0.01)
        assert a["score"] == pytest.approx(c["score"], abs=1e-4)
