"""SIGINT / SIGTERM in the middle of export, quantize, train and bench, in real subprocesses: exit 130, one
line, no partial output, no temp file; a train run interrupted after a checkpoint still resumes.

The child runs `python -m edgepose` (through runpy, so SIGINT can be given its default handler back even
when the test runner was started in the background with SIGINT ignored). For the "while publishing a file"
cases, EDGEPOSE_TEST_SLOW_PUBLISH=DIR makes the child's os.replace print a marker and wait before it
renames fsio's temp file in DIR into place: the signal lands while a half-made output exists, every time.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.quant_models import build_e2e_model, make_calib_dir

MARKER = "EDGEPOSE-TEST-PUBLISH"
CHILD = f"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
_SLOW = os.environ.get("EDGEPOSE_TEST_SLOW_PUBLISH")
if _SLOW:
    _replace = os.replace
    def _slow_replace(src, dst, *a, **k):
        src = os.fsdecode(src)
        if os.path.dirname(src) == _SLOW and os.path.basename(src).endswith(".tmp"):
            print("{MARKER}", src, file=sys.stderr, flush=True)
            time.sleep(60)
        return _replace(src, dst, *a, **k)
    os.replace = _slow_replace
import runpy
runpy.run_module("edgepose", run_name="__main__", alter_sys=True)
"""
REPO = Path(__file__).resolve().parents[2]


class Child:
    """`python -m edgepose ARGS` with its stderr read line by line on a thread."""

    def __init__(self, args: list[str | Path], cwd: Path, slow_publish: Path | None = None) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "COLUMNS": "200"}
        if slow_publish is not None:
            env["EDGEPOSE_TEST_SLOW_PUBLISH"] = str(slow_publish)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *map(str, args)],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_for(self, found: Callable[[str], bool], timeout: float = 90.0) -> str:
        """Return the first stderr line for which `found` is true (fail if the child ends first)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                assert self.proc.poll() is None, f"child ended (rc {self.proc.returncode}): {self.stderr}"
                continue
            self.stderr.append(line)
            if found(line):
                return line
        raise AssertionError(f"no marker within {timeout} s: {self.stderr}")

    def wait_until(self, cond: Callable[[], bool], timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while not cond():
            assert self.proc.poll() is None, f"child ended (rc {self.proc.returncode}): {self.drain()}"
            assert time.monotonic() < end, f"condition not met within {timeout} s: {self.drain()}"
            time.sleep(0.02)

    def interrupt(self, sig: signal.Signals) -> tuple[int, str]:
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=60)
        return rc, self.drain()

    def drain(self) -> str:
        if self.proc.poll() is not None:
            self.proc.wait()
            time.sleep(0.1)  # let the pump thread reach EOF
        while not self.lines.empty():
            self.stderr.append(self.lines.get())
        return "".join(self.stderr)


def _assert_interrupted(rc: int, err: str) -> None:
    assert rc == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "error: interrupted; no partial output was kept", err


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.name.endswith(".tmp") or p.name.endswith(".old")]


def test_export_sigterm_while_writing_leaves_nothing(lively_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    child = Child(
        ["export", "--weights", lively_checkpoint, "--out", out / "m.onnx", "--no-verify"], tmp_path, out
    )
    line = child.wait_for(lambda s: s.startswith(MARKER))
    temp = Path(line.split(" ", 1)[1].strip())
    assert temp.parent == out and temp.name.startswith(".m.onnx.") and temp.stat().st_size > 10_000
    rc, err = child.interrupt(signal.SIGTERM)
    _assert_interrupted(rc, err)
    assert list(out.iterdir()) == []  # neither m.onnx nor its temp file


def test_quantize_sigint_while_writing_leaves_nothing(tmp_path: Path) -> None:
    model = build_e2e_model(tmp_path / "f.onnx", seed=140, size=64)
    calib = make_calib_dir(tmp_path / "calib", n=4, seed=141, size=64)
    out = tmp_path / "out"
    out.mkdir()
    before = model.read_bytes()
    child = Child(
        ["quantize", model, "--calib", calib, "--bits", "8", "--out", out / "q.onnx"], tmp_path, out
    )
    line = child.wait_for(lambda s: s.startswith(MARKER))
    # The report is published first, inside the model's atomic write: both temp files exist now.
    assert Path(line.split(" ", 1)[1].strip()).name.startswith(".q.quant.json.")
    assert sorted(p.name.split(".")[2] for p in out.iterdir()) == ["onnx", "quant"]
    rc, err = child.interrupt(signal.SIGINT)
    _assert_interrupted(rc, err)
    assert list(out.iterdir()) == []  # no model, no report, no temp file
    assert model.read_bytes() == before


def _small_bench_args(ckpt: Path, data: Path, out: Path, cache: Path) -> list[object]:
    """`edgepose bench` of the float variant on 2 images, 1 run: quick, yet exports and caches a model."""
    return [
        "bench", ckpt, "--data", data, "--variants", "float", "--num-images", "2",
        "--runs", "1", "--threads", "1", "--out", out, "--cache-dir", cache,
    ]  # fmt: skip


def test_bench_sigterm_mid_export_leaves_no_report_and_no_partial_cache(
    lively_checkpoint: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    out, cache = tmp_path / "bench", tmp_path / "cache"
    args = _small_bench_args(lively_checkpoint, synth_dataset, out, cache)
    child = Child(args, tmp_path)
    child.wait_for(lambda s: "checkpoints are exported" in s)  # printed right before the export starts
    rc, err = child.interrupt(signal.SIGTERM)
    _assert_interrupted(rc, err)
    assert not out.exists()
    assert _temp_files(tmp_path) == []
    assert not cache.exists() or not [p for p in cache.rglob("*.onnx")]  # no half-exported model cached


def test_train_sigint_after_a_checkpoint_resumes(synth_dataset: Path, tmp_path: Path) -> None:
    from edgepose.nn.checkpoint import load_checkpoint

    run = tmp_path / "run"
    common = ["--data", synth_dataset, "--out", run, "--batch", "4", "--max-steps", "1", "--workers", "0"]
    child = Child(["train", *common, "--config", "edgepose-tiny", "--img", "64", "--epochs", "40"], tmp_path)
    child.wait_until(lambda: (run / "last.pt").is_file())
    rc, err = child.interrupt(signal.SIGINT)
    _assert_interrupted(rc, err)
    assert _temp_files(run) == []  # an interrupted checkpoint write left no temp file
    ck = load_checkpoint(run / "last.pt")  # complete, not half-written
    assert 1 <= ck.epoch < 40 and "options" in ck.train_state
    done = ck.epoch

    res = subprocess.run(
        [sys.executable, "-c", CHILD, "train", *map(str, common), "--resume", "--epochs", str(done + 1)],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"epochs {done + 1}..{done + 1}" in res.stderr  # continued where it stopped, not from 1
    assert load_checkpoint(run / "last.pt").epoch == done + 1
    assert _temp_files(run) == []


def test_bench_sigint_while_caching_a_model_leaves_nothing(
    lively_checkpoint: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    out, cache = tmp_path / "bench", tmp_path / "cache"
    args = _small_bench_args(lively_checkpoint, synth_dataset, out, cache)
    child = Child(args, tmp_path, cache)
    line = child.wait_for(lambda s: s.startswith(MARKER))  # the exported float model is being cached
    assert Path(line.split(" ", 1)[1].strip()).parent == cache
    rc, err = child.interrupt(signal.SIGINT)
    _assert_interrupted(rc, err)
    assert not out.exists() and list(cache.iterdir()) == []  # no report, no cached model, no temp file


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "clip.mp4",  # FFmpeg logs past OpenCV's logger ("moov atom not found")
            "not a readable video (corrupt, empty or an unsupported codec); "
            "re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or leave it out",
        ),
        (
            "pic.png",  # fails inside the progress bar, whose last frame must not be printed
            "not a readable image (corrupt, empty or an unsupported format); "
            "replace the file or leave it out",
        ),
    ],
)
def test_real_process_error_is_the_only_stderr_line(tmp_path: Path, name: str, message: str) -> None:
    from tests.helpers.runtime_onnx import build_model

    model = build_model(tmp_path / "m.onnx")
    (tmp_path / name).write_bytes(b"")
    res = subprocess.run(
        [sys.executable, "-c", CHILD, "predict", str(model), str(tmp_path / name), "--out", "o"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 1
    assert [ln for ln in res.stderr.splitlines() if ln.strip()] == [f"error: {tmp_path / name}: {message}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "m.onnx"])
