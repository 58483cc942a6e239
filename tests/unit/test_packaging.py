"""What a non-editable install ships: the wheel holds the model registry and the runtime, and the registry
lists every config from the installed files (not from a checkout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p.stem for p in (REPO / "edgepose" / "models").glob("*.yaml"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel` of a copy of the sources (the build never writes into the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "edgepose", src / "edgepose", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(root / "dist"), str(src)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (whl,) = (root / "dist").glob("edgepose-*.whl")
    return whl


def test_registry_has_the_shipped_variants() -> None:
    assert {"edgepose-n", "edgepose-s", "edgepose-m", "edgepose-l", "edgepose-tiny"} <= set(CONFIGS)
    assert len(CONFIGS) == 12  # + erpose-n, erpose-s, erpose-tiny


def test_wheel_holds_the_registry_and_the_runtime(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"edgepose/models/{c}.yaml" for c in CONFIGS} <= names
    runtime = {f"edgepose/runtime/{m}.py" for m in ("estimator", "session", "preprocess", "pipeline")}
    assert runtime | {"edgepose/spec.py", "edgepose/defaults.py", "edgepose/cli/__init__.py"} <= names
    assert not any(n.startswith(("models/", "tests/")) or n.endswith(".pt") for n in names)


def test_installed_registry_lists_every_config(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what `pip install --no-deps edgepose-*.whl` puts in place
    code = (
        "import json, sys, edgepose, edgepose.nn.config as c; "
        "print(json.dumps({'file': edgepose.__file__, 'configs': c.available_configs(), "
        "'n': c.resolve_config('edgepose-n').name, 'torch': 'torch' in sys.modules}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # not the checkout: nothing can be found through the current folder
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert Path(got["file"]).is_relative_to(site)
    assert got["configs"] == CONFIGS and got["n"] == "edgepose-n"
    assert got["torch"] is False
