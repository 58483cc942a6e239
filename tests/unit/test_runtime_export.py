"""The real exported tiny model (tests/fixtures_export.py) through the runtime: contract agreement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from edgepose.runtime import PoseEstimator, preprocess
from edgepose.spec import (
    DETECTIONS_NAME,
    INPUT_NAME,
    IOU_THR_NAME,
    MAX_DET_NAME,
    NUM_DETS_NAME,
    SCORE_THR_NAME,
)

torch.set_num_threads(1)  # the export fixture runs torch


def test_exported_model_runs_and_maps_back(tiny_onnx: Path) -> None:
    est = PoseEstimator(tiny_onnx, threads=1)
    spec = est.spec
    assert spec.input_size == (128, 128) and spec.num_keypoints == 17 and est.batch_size == 1
    assert all(est.supports_override(n) for n in (SCORE_THR_NAME, IOU_THR_NAME, MAX_DET_NAME))
    image = np.random.default_rng(101).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    r = est(image)
    # Same numbers as running the graph by hand and undoing the letterbox with its own formula.
    tensor, info = preprocess(image, spec)
    sess = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    dets, num = sess.run([DETECTIONS_NAME, NUM_DETS_NAME], {INPUT_NAME: tensor})
    rows = dets[0, : int(num[0])]  # (n, 6 + 3K)
    assert len(r) == len(rows) > 0
    scale, pad_y = 128 / 160, (128 - 72) // 2  # 160 x 90 -> 128 x 72, padded 28 px above
    assert (info.scale_x, info.pad_x, info.pad_y) == (scale, 0.0, pad_y)
    x = np.clip(rows[:, [0, 2]] / scale, 0, 160)
    y = np.clip((rows[:, [1, 3]] - pad_y) / (72 / 90), 0, 90)
    np.testing.assert_allclose(r.boxes[:, [0, 2]], x, atol=1e-3)
    np.testing.assert_allclose(r.boxes[:, [1, 3]], y, atol=1e-3)
    np.testing.assert_allclose(r.scores, rows[:, 4], atol=1e-6)
    kx = np.clip(rows[:, 6::3] / scale, 0, 160)  # (n, K)
    np.testing.assert_allclose(r.keypoints[..., 0], kx, atol=1e-3)
    np.testing.assert_allclose(r.keypoints[..., 2], rows[:, 8::3], atol=1e-6)
    assert (r.scores >= spec.conf_threshold).all()
    # Run-time overrides reach the graph. This model's scores lie in ~(0.46, 0.59) on this image, so
    # 0.001 and 0.25 both fill max_det = 100 and 0.55 keeps exactly the low run's rows above 0.55.
    low, mid = est(image, conf=0.001), est(image, conf=0.55)
    assert len(low) == 100 and 0 < len(mid) < 100 and len(mid) == int((low.scores >= 0.55).sum())
    np.testing.assert_allclose(mid.boxes, low.boxes[: len(mid)], atol=1e-4)
    assert len(est(image, conf=0.001, max_det=7)) == 7 and len(est(image, conf=0.7)) == 0
    assert (low.boxes[:, [0, 2]] <= 160).all() and (low.boxes[:, [1, 3]] <= 90).all()
