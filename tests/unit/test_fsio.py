"""fsio: the overwrite rule, missing parent folders, and atomic writes that leave nothing on failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepose.errors import OutputError
from edgepose.fsio import atomic_dir, atomic_path, check_new, write_text


def test_check_new_is_the_overwrite_rule(tmp_path: Path) -> None:
    f = tmp_path / "m.onnx"
    assert check_new(f, force=False) == f  # nothing there yet
    f.write_text("old")
    with pytest.raises(OutputError) as exc:
        check_new(f, force=False)
    assert str(exc.value) == f"{f} already exists; pass --force to replace it, or choose another --out"
    assert check_new(f, force=True) == f
    d = tmp_path / "run"
    d.mkdir()
    assert check_new(d, force=False) == d  # an empty folder is free to fill
    (d / "x.jpg").write_text("x")
    with pytest.raises(
        OutputError, match=r"run already exists and is not empty; pass --force .* another --json$"
    ):
        check_new(d, force=False, option="--json")
    with pytest.raises(OutputError, match=r"m\.onnx is a file, not a folder; choose another --out$"):
        check_new(f / "sub" / "g.jpg", force=True)  # a file stands where a folder is needed


def test_missing_parents_are_made_and_removed_again_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "data" / "train" / "annotations.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.parent.is_dir()
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == []  # no half-made data/train/
    assert write_text(target, "{}") == target and target.read_text() == "{}"
    run = tmp_path / "runs" / "pi"
    with pytest.raises(KeyboardInterrupt), atomic_dir(run):
        raise KeyboardInterrupt
    assert not (tmp_path / "runs").exists()
    with atomic_dir(run) as tmp:
        (tmp / "a.jpg").write_text("a")
    assert [p.name for p in run.iterdir()] == ["a.jpg"]


def test_atomic_dir_keeps_the_old_output_until_the_new_one_is_complete(tmp_path: Path) -> None:
    out = tmp_path / "s"
    with atomic_dir(out) as tmp:
        (tmp / "old.txt").write_text("old")
    with pytest.raises(OutputError, match="already exists and is not empty; pass --force"), atomic_dir(out):
        pass
    with pytest.raises(RuntimeError), atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temp or .old folder left
