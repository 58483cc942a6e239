"""The runtime (and `edgepose predict`) work with torch and onnx unimportable, as on a board."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edgepose.runtime import PoseEstimator
from tests.helpers.blocker import run_blocked
from tests.helpers.runtime_onnx import build_model


def test_blocker_blocks(tmp_path: Path) -> None:
    proc = run_blocked("import onnx", tmp_path)
    assert proc.returncode != 0 and "blocked for the torch-free test: onnx" in proc.stderr


def test_runtime_predicts_without_torch_or_onnx(tmp_path: Path) -> None:
    model = build_model(tmp_path / "m.onnx")  # onnx is fine here, in the parent
    image = np.full((100, 200, 3), 114, np.uint8)
    cv2.imwrite(str(tmp_path / "img.png"), image)
    proc = run_blocked(
        """
        import json, sys, cv2
        from edgepose.runtime import PoseEstimator
        r = PoseEstimator("m.onnx")(cv2.imread("img.png"))
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "onnxslim", "onnxsim"))
        print(json.dumps({"boxes": r.boxes.tolist(), "kpts": r.keypoints.tolist(), "bad": bad}))
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["bad"] == []
    ref = PoseEstimator(model)(image)
    np.testing.assert_allclose(got["boxes"], ref.boxes, atol=1e-5)
    np.testing.assert_allclose(got["kpts"], ref.keypoints, atol=1e-5)
    assert len(got["boxes"]) == 3


def test_predict_command_without_torch_or_onnx(tmp_path: Path) -> None:
    build_model(tmp_path / "m.onnx")
    cv2.imwrite(str(tmp_path / "img.png"), np.full((100, 200, 3), 114, np.uint8))
    proc = run_blocked(
        """
        from edgepose.cli import app
        app(["predict", "m.onnx", "img.png", "--out", "out", "--save-json"], standalone_mode=False)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    preds = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert len(preds) == 3 and (tmp_path / "out" / "img.png").is_file()
