"""The environment fights back: unreadable inputs, unwritable output folders, a full disk, and non-ASCII
paths (which must just work). Every failure is one `error:` line, exit 1, no output left, inputs unchanged.

Permissions: CI runs as root, where permission bits block nothing; there the denial is simulated by
patching the call the code reads or checks with (open, numpy.fromfile, Path.iterdir, os.access), as a
non-root user it is a real chmod. A full disk is simulated by writers that write part of the bytes and then
raise OSError(ENOSPC), as a full filesystem does.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from edgepose.cli import app
from tests.helpers.errors import assert_clean_failure, tree_hashes
from tests.helpers.quant_models import build_e2e_model, make_calib_dir
from tests.helpers.runtime_onnx import build_model

runner = CliRunner()
ROOT = os.geteuid() == 0


def _inside(arg: object, path: Path) -> bool:
    try:
        p = Path(os.fsdecode(arg)).resolve()  # type: ignore[arg-type]
    except TypeError:
        return False  # a file descriptor or a buffer: not a path
    return p == path or path in p.parents


@contextlib.contextmanager
def unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`path` (file or folder) cannot be read: chmod 000, or as root patched readers that say EACCES."""
    path = path.resolve()
    if not ROOT:
        mode = path.stat().st_mode
        path.chmod(0)
        try:
            yield
        finally:
            path.chmod(stat.S_IMODE(mode))
        return

    def denied(arg: object) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(arg))  # type: ignore[arg-type]

    real_open, real_fromfile, real_iterdir = builtins.open, np.fromfile, Path.iterdir

    def fake_open(file: object, *a: object, **k: object) -> object:
        if _inside(file, path):
            raise denied(file)
        return real_open(file, *a, **k)

    def fake_fromfile(file: object, *a: object, **k: object) -> np.ndarray:
        if _inside(file, path):
            raise denied(file)
        return real_fromfile(file, *a, **k)

    def fake_iterdir(self: Path) -> Iterator[Path]:
        if _inside(self, path):
            raise denied(self)
        return real_iterdir(self)

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", fake_open)
        m.setattr(io, "open", fake_open)  # Path.open / read_text / read_bytes go through io.open
        m.setattr(np, "fromfile", fake_fromfile)
        m.setattr(Path, "iterdir", fake_iterdir)
        yield


@contextlib.contextmanager
def unwritable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`folder` cannot be written: chmod 555, or as root os.access(folder, W_OK) is False."""
    folder = folder.resolve()
    if not ROOT:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    real_access = os.access

    def fake_access(p: object, mode: int, *a: object, **k: object) -> bool:
        if mode & os.W_OK and Path(os.fsdecode(p)).resolve() == folder:  # type: ignore[arg-type]
            return False
        return real_access(p, mode, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(os, "access", fake_access)
        yield


@pytest.fixture(scope="module")
def inp(
    tmp_path_factory: pytest.TempPathFactory, lively_checkpoint: Path, synth_dataset: Path
) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("env_in")
    p = {"dir": d}
    p["ckpt"] = Path(shutil.copy(lively_checkpoint, d / "w.pt"))
    p["e2e"] = build_e2e_model(d / "e2e.onnx", seed=122, size=64)
    p["rt"] = build_model(d / "rt.onnx")
    p["calib"] = make_calib_dir(d / "calib", n=4, seed=123, size=64)
    p["ds"] = Path(shutil.copytree(synth_dataset, d / "ds"))
    p["img"] = sorted((p["ds"] / "images").iterdir())[0]
    p["gt"] = p["ds"] / "annotations.json"
    pred = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in json.loads(p["gt"].read_text())["annotations"]
        if a.get("num_keypoints", 1) > 0 and not a.get("iscrowd", 0)
    ]
    p["pred"] = d / "pred.json"
    p["pred"].write_text(json.dumps(pred))
    return p


def _run_failing(
    inp: dict[str, Path],
    out: Path,
    args: list[object],
    *fragments: str,
    during: contextlib.AbstractContextManager[None] | None = None,
) -> str:
    """Run a failing command (inside `during`), then check the message, the inputs and the output folder."""
    before = tree_hashes(inp["dir"])
    with during or contextlib.nullcontext():
        result = runner.invoke(app, [str(a) for a in args])
    line = assert_clean_failure(result, fragments)
    assert tree_hashes(inp["dir"]) == before
    assert not out.exists() or list(out.iterdir()) == []  # nothing written, no temp file left
    return line


# --- paths without permission ------------------------------------------------------------------------


def test_unreadable_checkpoint(inp: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_failing(
        inp, tmp_path, ["export", "--weights", inp["ckpt"], "--out", tmp_path / "m.onnx"],
        f"{inp['ckpt']}: cannot read the file (Permission denied); check its permissions",
        during=unreadable(inp["ckpt"], monkeypatch),
    )  # fmt: skip


def test_unreadable_image(inp: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_failing(
        inp, tmp_path, ["predict", inp["rt"], inp["img"], "--out", tmp_path / "p"],
        f"{inp['img']}: cannot read the file (Permission denied); check its permissions",
        during=unreadable(inp["img"], monkeypatch),
    )  # fmt: skip


def test_unreadable_calibration_folder(
    inp: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_failing(
        inp, tmp_path,
        ["quantize", inp["e2e"], "--calib", inp["calib"], "--bits", "8", "--out", tmp_path / "q.onnx"],
        f"cannot read calibration folder {inp['calib']} (Permission denied)", "--calib DIR",
        during=unreadable(inp["calib"], monkeypatch),
    )  # fmt: skip


@pytest.mark.parametrize("command", ["predict", "bench"])
def test_unreadable_image_folder(
    inp: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """A folder of images that cannot be listed: predict's input, bench's unlabelled --data."""
    folder = inp["calib"]
    args = {
        "predict": (
            ["predict", inp["rt"], folder, "--out", tmp_path / "p"],
            f"{folder}: cannot read the folder",
        ),
        "bench": (
            ["bench", inp["rt"], "--data", folder, "--out", tmp_path / "b", "--runs", "1"],
            f"--data {folder}: cannot read the folder",
        ),
    }[command]
    _run_failing(
        inp, tmp_path, args[0], args[1], "(Permission denied); check its permissions",
        during=unreadable(folder, monkeypatch),
    )  # fmt: skip


def test_unreadable_annotations(
    inp: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_failing(
        inp, tmp_path, ["val", "--pred", inp["pred"], "--gt", inp["gt"], "--json", tmp_path / "m.json"],
        f"{inp['gt']}: cannot read annotation file", "Permission denied",
        during=unreadable(inp["gt"], monkeypatch),
    )  # fmt: skip


def test_unreadable_yolo_label(inp: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    yolo = tmp_path / "yolo"
    assert runner.invoke(app, ["data", "convert", str(inp["ds"]), str(yolo), "--to", "yolo"]).exit_code == 0
    label = sorted((yolo / "labels").glob("*.txt"))[0]
    out = tmp_path / "out"
    out.mkdir()
    _run_failing(
        inp, out, ["data", "convert", yolo, out / "c", "--to", "coco"],
        f"{label}: cannot read the file (Permission denied); check its permissions",
        during=unreadable(label, monkeypatch),
    )  # fmt: skip


@pytest.mark.parametrize(
    "command", ["export", "quantize", "predict", "val", "synth", "preview", "convert", "bench"]
)
def test_unwritable_output_folder(
    inp: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    args = {
        "export": ["export", "--weights", inp["ckpt"], "--out", out / "m.onnx"],
        "quantize": ["quantize", inp["e2e"], "--calib", inp["calib"], "--bits", "8", "--out", out / "q.onnx"],
        "predict": ["predict", inp["rt"], inp["img"], "--out", out / "p"],
        "val": ["val", "--pred", inp["pred"], "--gt", inp["gt"], "--json", out / "m.json"],
        "synth": ["data", "synth", "--out", out / "s", "--num-images", "2", "--size", "64"],
        "preview": ["data", "preview", inp["ds"], "--out", out / "g.jpg"],
        "convert": ["data", "convert", inp["ds"], out / "y", "--to", "yolo"],
        "bench": ["bench", inp["rt"], "--data", inp["ds"], "--out", out / "b", "--cache-dir", out / "c"],
    }[command]
    option = "--json" if command == "val" else "--out"
    _run_failing(
        inp, out, args, f"output folder {out} is not writable; choose another {option}",
        during=unwritable(out, monkeypatch),
    )  # fmt: skip


# --- a full disk ---------------------------------------------------------------------------------------


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every write under tmp_path/"full" writes half its bytes, then fails with ENOSPC."""
    full = tmp_path / "full"
    full.mkdir()

    def enospc(target: object) -> OSError:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(target))  # type: ignore[arg-type]

    real_write_bytes, real_write_text, real_save = Path.write_bytes, Path.write_text, onnx.save_model

    def write_bytes(self: Path, data: bytes) -> int:
        if _inside(self, full.resolve()):
            real_write_bytes(self, bytes(data)[: len(data) // 2])
            raise enospc(self)
        return real_write_bytes(self, data)

    def write_text(self: Path, data: str, *a: object, **k: object) -> int:
        if _inside(self, full.resolve()):
            real_write_text(self, data[: len(data) // 2], *a, **k)
            raise enospc(self)
        return real_write_text(self, data, *a, **k)

    def save_model(model: onnx.ModelProto, f: object, *a: object, **k: object) -> None:
        if isinstance(f, (str, os.PathLike)) and _inside(f, full.resolve()):
            Path(f).write_bytes(b"\x08\x08" + b"\x00" * 100)  # a partial file, as a full disk leaves
            raise enospc(f)
        real_save(model, f, *a, **k)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    monkeypatch.setattr(Path, "write_text", write_text)
    monkeypatch.setattr(onnx, "save_model", save_model)
    monkeypatch.setattr(onnx, "save", save_model)
    return full


@pytest.mark.parametrize("command", ["export", "quantize", "predict", "val", "synth", "preview", "convert"])
def test_full_disk_is_one_line_and_leaves_nothing(
    inp: dict[str, Path], full_disk: Path, command: str
) -> None:
    out = full_disk
    target, args = {
        "export": ("m.onnx", ["export", "--weights", inp["ckpt"], "--out", out / "m.onnx", "--no-verify"]),
        "quantize": (
            "q.onnx",
            ["quantize", inp["e2e"], "--calib", inp["calib"], "--bits", "8", "--out", out / "q.onnx"],
        ),
        "predict": ("p", ["predict", inp["rt"], inp["img"], "--out", out / "p"]),
        "val": ("m.json", ["val", "--pred", inp["pred"], "--gt", inp["gt"], "--json", out / "m.json"]),
        "synth": ("s", ["data", "synth", "--out", out / "s", "--num-images", "2", "--size", "64"]),
        "preview": (
            "g.jpg", ["data", "preview", inp["ds"], "--out", out / "g.jpg", "--num", "2", "--tile", "64"]
        ),
        "convert": ("y", ["data", "convert", inp["ds"], out / "y", "--to", "yolo"]),
    }[command]  # fmt: skip
    _run_failing(
        inp, out, args, f"no space left while writing {out / target}; free disk space or choose another --out"
    )


def test_full_disk_during_a_checkpoint_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's own file writer reports ENOSPC as a RuntimeError; save_checkpoint writes through Python."""
    import torch

    from edgepose.errors import OutputError
    from edgepose.nn import build_model as build_pose_model
    from edgepose.nn import resolve_config, save_checkpoint
    from edgepose.spec import PoseSpec

    torch.manual_seed(0)
    model = build_pose_model(resolve_config("edgepose-tiny"))
    real = Path.write_bytes

    def write_bytes(self: Path, data: bytes) -> int:
        real(self, bytes(data)[:1000])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(OutputError) as e:
        save_checkpoint(tmp_path / "last.pt", model, PoseSpec(), epoch=3, metrics={})
    assert str(e.value) == (
        f"no space left while writing {tmp_path / 'last.pt'}; free disk space or choose another --out"
    )
    assert list(tmp_path.iterdir()) == []


def test_output_path_that_is_a_folder(inp: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "m.onnx").mkdir()
    before = tree_hashes(inp["dir"])
    result = runner.invoke(
        app, ["export", "--weights", str(inp["ckpt"]), "--out", str(tmp_path / "m.onnx"), "--no-verify"]
    )
    assert_clean_failure(
        result,
        (f"{tmp_path / 'm.onnx'} is a folder; pass a file path (e.g. {tmp_path / 'm.onnx' / 'm.onnx'})",),
    )
    assert tree_hashes(inp["dir"]) == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"] and not any((tmp_path / "m.onnx").iterdir())


# --- non-ASCII paths just work -------------------------------------------------------------------------


def test_non_ascii_paths_through_every_command(inp: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "données"
    root.mkdir()
    ckpt = Path(shutil.copy(inp["ckpt"], root / "poids ñ.pt"))
    image = root / "ñ 画像.jpg"
    shutil.copy(inp["img"], image)
    calib = Path(shutil.copytree(inp["calib"], root / "étalonnage 校准"))
    ok = lambda *a: runner.invoke(app, [str(x) for x in a])  # noqa: E731

    res = ok("data", "synth", "--out", root / "jeu ñ", "--num-images", "2", "--size", "64", "--seed", "130")
    assert res.exit_code == 0, res.output
    res = ok("data", "convert", root / "jeu ñ", root / "yolo 画像", "--to", "yolo")
    assert res.exit_code == 0, res.output
    res = ok(
        "data", "preview", root / "yolo 画像", "--out", root / "aperçu 预览.png", "--num", "2", "--tile", "64"
    )
    assert res.exit_code == 0, res.output
    assert cv2.imdecode(np.fromfile(root / "aperçu 预览.png", np.uint8), cv2.IMREAD_COLOR).shape == (
        64,
        128,
        3,
    )

    res = ok("export", "--weights", ckpt, "--out", root / "modèle 模型.onnx", "--no-verify", "--conf", "0.05")
    assert res.exit_code == 0, res.output
    res = ok("quantize", inp["e2e"], "--calib", calib, "--bits", "8", "--out", root / "modèle q8 ñ.onnx")
    assert res.exit_code == 0, res.output
    assert (root / "modèle q8 ñ.quant.json").is_file()

    res = ok("predict", root / "modèle 模型.onnx", image, "--out", root / "sortie 出力", "--save-json")
    assert res.exit_code == 0, res.output
    out = root / "sortie 出力"
    assert sorted(p.name for p in out.iterdir()) == ["files.json", "predictions.json", "ñ 画像.jpg"]
    assert json.loads((out / "files.json").read_text(encoding="utf-8")) == {"0": str(image)}
    annotated = cv2.imdecode(np.fromfile(out / "ñ 画像.jpg", np.uint8), cv2.IMREAD_COLOR)
    assert annotated.shape == cv2.imread(str(image)).shape
    res = ok("val", "--pred", inp["pred"], "--gt", inp["gt"], "--json", root / "métriques ñ.json")
    assert res.exit_code == 0 and json.loads((root / "métriques ñ.json").read_text())["ap"] == pytest.approx(
        1.0
    )
    assert not [p for p in root.rglob(".*") if p.name.endswith(".tmp")]  # no temp left anywhere


def test_full_disk_on_the_quantize_report_leaves_no_model(
    inp: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model is complete but its .quant.json cannot be written: neither file may be left."""
    real = Path.write_text

    def write_text(self: Path, data: str, *a: object, **k: object) -> int:
        if self.name.startswith(".q.quant.json."):
            real(self, data[:10], *a, **k)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, data, *a, **k)

    monkeypatch.setattr(Path, "write_text", write_text)
    _run_failing(
        inp, tmp_path,
        ["quantize", inp["e2e"], "--calib", inp["calib"], "--bits", "8", "--out", tmp_path / "q.onnx"],
        f"no space left while writing {tmp_path / 'q.quant.json'}; free disk space or choose another --out",
    )  # fmt: skip
