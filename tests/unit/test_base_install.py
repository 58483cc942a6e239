"""A base install (`pip install .`: no torch, PyYAML or onnxslim): the commands that need the training extra
say so in one line with the install command, instead of a ModuleNotFoundError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What `pip install .` leaves out behaves as absent: ModuleNotFoundError with the module's name, as Python
# raises it for a package that is not installed.
ABSENT = """
import importlib.abc, sys
ABSENT = {"torch", "yaml", "onnxslim"}
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Absent())
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    wheel = (
        "--wheel" in args
    )  # as installed from the wheel: the checkout's models/ and calibration/ are not there
    args = [a for a in args if a != "--wheel"]
    code = ABSENT + textwrap.dedent(
        f"""
        import pathlib
        import edgepose.bench.defaults
        if {wheel}:
            edgepose.bench.defaults._PROJECT_ROOT = pathlib.Path("/nonexistent")
        sys.argv = ["edgepose", *{args!r}]
        from edgepose.cli import main
        main()
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={
            "PYTHONPATH": str(REPO),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OMP_NUM_THREADS": "1",
            "COLUMNS": "80",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["export", "--weights", "w.pt", "--out", "out/m.onnx"], "`edgepose export` needs PyTorch"),
        (["train", "--config", "edgepose-n", "--data", "ds", "--out", "out/run"], "`edgepose train` needs"),
        (["val", "--weights", "w.pt", "--data", "ds"], "`edgepose val --weights` needs PyTorch"),
        (
            ["bench", "w.pt", "--data", "ds", "--out", "out/b", "--cache-dir", "out/c"],
            "`edgepose bench` of a checkpoint (.pt) needs PyTorch",
        ),
        (  # installed from the wheel, away from a checkout: no calibration/ either; torch is what to name
            ["bench", "w.pt", "--data", "ds", "--out", "out/b", "--cache-dir", "out/c", "--wheel"],
            "`edgepose bench` of a checkpoint (.pt) needs PyTorch",
        ),
    ],
    ids=["export", "train", "val", "bench", "bench-quantize"],
)
def test_commands_that_need_torch_say_so_in_one_line(
    tmp_path: Path, synth_dataset: Path, args: list[str], what: str
) -> None:
    (tmp_path / "w.pt").write_bytes(b"\x80not a real checkpoint")  # never read: the import fails first
    (tmp_path / "ds").symlink_to(synth_dataset)
    proc = _run(args, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith(f"error: {what}"), line
    assert "which the base install (pip install .) leaves out" in line
    assert 'pip install "edgepose[train]"' in line and "torch==2.13.0" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "w.pt"]  # nothing written
