"""Atomic outputs: write to a temporary sibling, then rename.

Every command that writes a file or a folder goes through here, so an interrupted or
failed run never leaves a half-written model, dataset or report behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgepose.errors import OutputError


def check_parent(path: str | os.PathLike[str]) -> Path:
    """Return `path` as a Path after checking its folder exists and is writable."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist; create it or choose another --out")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable; choose another --out")
    return p


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
def atomic_dir(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success move it to `path`.

    With `overwrite`, an existing `path` is replaced only after the new one is complete.
    """
    target = check_parent(path)
    if target.exists() and not overwrite and any(target.iterdir() if target.is_dir() else [target]):
        raise OutputError(f"{target} already exists and is not empty; remove it or choose another --out")
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
