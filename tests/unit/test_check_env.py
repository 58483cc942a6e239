"""scripts/check_env.py: the lock reader and the drift check behind `make setup`."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from tests.helpers.scripts import REPO, load_script

ce = load_script("check_env")

LOCK = """\
#    pip-compile --generate-hashes ...
numpy==2.4.6 \\
    --hash=sha256:00
    # via edgepose (pyproject.toml)
Opencv_Python.Headless==5.0.0.93 \\
    --hash=sha256:11
torch==2.13.0+cpu \\
    --hash=sha256:22
"""


def test_read_lock_parses_pins_and_normalizes_names(tmp_path: Path) -> None:
    (tmp_path / "x.lock").write_text(LOCK)
    assert ce.read_lock(tmp_path / "x.lock") == {
        "numpy": "2.4.6", "opencv-python-headless": "5.0.0.93", "torch": "2.13.0+cpu"}  # fmt: skip


def test_drift_names_each_mismatch_and_missing_package() -> None:
    have = metadata.version("numpy")
    assert ce.drift({"numpy": have}) == []
    assert ce.drift({"numpy": "0.0.1", "no-such-package-xyz": "1.0"}) == [
        "no-such-package-xyz missing (locked 1.0)", f"numpy {have} (locked 0.0.1)"]  # fmt: skip


def test_main_is_one_line_and_exit_1_on_drift(tmp_path: Path, capsys) -> None:
    (tmp_path / "x.lock").write_text("numpy==0.0.1 \\\n    --hash=sha256:00\n")
    assert ce.main([str(tmp_path / "x.lock")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "numpy" in err[0] and "locked 0.0.1" in err[0] and "make setup" in err[0]


def test_this_environment_matches_the_dev_lock() -> None:
    # `make test` installs from the lock before running: nothing may differ here
    assert ce.drift(ce.read_lock(REPO / "requirements" / "dev.lock")) == []
