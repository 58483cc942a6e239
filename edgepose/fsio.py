"""Atomic outputs: write to a temporary sibling, then rename; and the one overwrite rule.

Every command that writes a file or a folder goes through here, so an interrupted or
failed run never leaves a half-written model, dataset or report behind. Missing parent
folders of an output are made when it is written (and removed again if the write fails).
An existing output is replaced only when the caller says so (`check_new(force=True)`,
the CLI's `--force`), and then only once the new one is complete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgepose.errors import OutputError


def file_digest(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 (hex) of a file's bytes, read in chunks: the identity of a model file (bench's cache keys, the
    float file a quantized model was made from)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _existing_ancestor(p: Path) -> Path:
    """The nearest folder above `p` that exists (or the first thing in the way that is not a folder)."""
    parent = p.parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_parent(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Return `path` as a Path after checking it can be written: the nearest existing folder above it is
    writable (the missing ones are made when the output is written) and no file stands in the way."""
    p = Path(path)
    parent = _existing_ancestor(p)
    if not parent.is_dir():
        raise OutputError(f"{parent} is a file, not a folder; choose another {option}")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable; choose another {option}")
    return p


def _taken(p: Path) -> bool:
    """An existing file, or a folder with something in it (an empty folder is free to fill)."""
    if p.is_dir() and not p.is_symlink():
        return any(p.iterdir())
    return p.exists() or p.is_symlink()


def check_new(path: str | os.PathLike[str], *, force: bool, option: str = "--out") -> Path:
    """The overwrite rule of every command: an existing output (a file, or a folder that is not empty) is
    replaced only with `force` (the CLI's --force); otherwise this fails before any work is done."""
    p = check_parent(path, option)
    if not force and _taken(p):
        what = "already exists and is not empty" if p.is_dir() else "already exists"
        raise OutputError(f"{p} {what}; pass --force to replace it, or choose another {option}")
    return p


@contextlib.contextmanager
def _parents(target: Path) -> Iterator[None]:
    """Make the missing folders above `target`; remove the ones made here again if the body fails."""
    made: list[Path] = []
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        made.append(parent)
        parent = parent.parent
    try:
        for folder in reversed(made):
            folder.mkdir()
    except OSError as exc:
        _remove_empty(made)
        raise _translate(exc, target) from exc
    try:
        yield
    except BaseException:
        _remove_empty(made)
        raise


def _remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (deepest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, is_dir: bool) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give outputs the usual umask-based mode."""
    base = 0o777 if is_dir else 0o666
    os.chmod(path, base & ~_umask())


def _translate(exc: OSError, target: Path) -> OutputError:
    if exc.errno == errno.ENOSPC:
        return OutputError(f"no space left while writing {target}; free disk space or choose another --out")
    if exc.errno == errno.EISDIR:
        return OutputError(f"{target} is a folder; pass a file path (e.g. {target / target.name})")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"cannot write {target} ({exc.strerror}); choose another --out")
    return OutputError(f"cannot write {target}: {exc}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path beside `path`; on success rename it onto `path`.

    The temporary file is removed on any error or interrupt (KeyboardInterrupt too).
    """
    target = check_parent(path)
    with _parents(target):
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            _publish_mode(tmp_path, is_dir=False)
            os.replace(tmp_path, target)
        except OSError as exc:
            tmp_path.unlink(missing_ok=True)
            raise _translate(exc, target) from exc
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike[str], overwrite: bool = False, option: str = "--out"
) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success move it to `path`.

    An existing non-empty `path` is refused (`check_new`) unless `overwrite`, and then replaced only
    after the new one is complete.
    """
    target = check_new(path, force=overwrite, option=option)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} is a file; pass a folder path as {option}")
    with _parents(target):
        tmp_path = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or "."))
        try:
            yield tmp_path
            _publish_mode(tmp_path, is_dir=True)
            if target.exists():
                old = target.with_name(f".{target.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
                os.replace(tmp_path, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp_path, target)
        except OSError as exc:
            shutil.rmtree(tmp_path, ignore_errors=True)
            raise _translate(exc, target) from exc
        except BaseException:
            shutil.rmtree(tmp_path, ignore_errors=True)
            raise


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write a text file (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically write a binary file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
