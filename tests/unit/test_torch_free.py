"""The runtime (and `edgepose predict`) work with torch and onnx unimportable, as on a board."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np

from edgepose.runtime import PoseEstimator
from tests.helpers.runtime_onnx import build_model

REPO = Path(__file__).resolve().parents[2]

BLOCKER = """
import importlib.abc, sys
BLOCKED = {"torch", "onnx", "onnxsim", "onnxslim"}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for the torch-free test: {name}")
        return None
sys.meta_path.insert(0, Blocker())
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]
"""


def run_blocked(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
        cwd=cwd,
        # A bare environment, except the emulator's own variables when this runs under aarch64-python.
        env={
            **{k: v for k, v in os.environ.items() if k.startswith("AARCH64_")},
            "PYTHONPATH": str(REPO),
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


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


def test_model_configs_load_without_torch(tmp_path: Path) -> None:
    proc = run_blocked(
        """
        from edgepose.nn import resolve_config
        from edgepose.nn.config import available_configs
        print(resolve_config("edgepose-n").name, len(available_configs()))
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["edgepose-n", "12"]


def test_quantization_imports_without_torch(tmp_path: Path) -> None:
    # quant needs onnx (not blocked here: only torch and onnxslim are) but never torch, so a board-side
    # or CI-side install without torch can quantize an exported file.
    code = BLOCKER.replace('{"torch", "onnx", "onnxsim", "onnxslim"}', '{"torch", "onnxsim", "onnxslim"}') + (
        "import sys, edgepose.quant, edgepose.quant.quantize, edgepose.quant.calib, edgepose.quant.plan\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnxslim', 'onnxsim')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
