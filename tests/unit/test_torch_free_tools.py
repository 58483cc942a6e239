"""Tools that must not need torch either: model configs (registry) and quantization (x86 only: the aarch64
check runs tests/unit/test_torch_free.py, the board's runtime, where PyYAML is not installed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers.blocker import BLOCKER, REPO, run_blocked
from tests.helpers.quant_graphs import build_pose_model, make_images


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


def test_quantize_with_every_8bit_stage_runs_without_torch(tmp_path: Path) -> None:
    """Issue 16: the fitted stages (equalization, ranges, rounding, bias correction) are numpy, so the base
    install quantizes with all of them: forced on, each must run and be kept, with torch unimportable."""
    model = build_pose_model(tmp_path / "m.onnx")
    calib = make_images(tmp_path / "calib", n=8)
    code = BLOCKER.replace('{"torch", "onnx", "onnxsim", "onnxslim"}', '{"torch", "onnxsim", "onnxslim"}') + (
        "import json, sys\n"
        "from edgepose.cli import app\n"
        f"app(['quantize', {str(model)!r}, '--calib', {str(calib)!r}, '--bits', '8', '--equalize',"
        " '--tight-ranges', '--rounding', '--bias-correction'], standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    report = json.loads((tmp_path / "m.int8.quant.json").read_text(encoding="utf-8"))
    steps = {s["stage"]: s["kept"] for s in report["optimizations"]}
    assert steps == {"equalize": True, "ranges": True, "rounding": True, "biascorr": True}
