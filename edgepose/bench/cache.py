"""Content-hash cache of the models bench makes from a checkpoint (float export, quantized variants).

A key hashes everything the file depends on: the checkpoint's bytes, the export options, and for a
quantized variant the float key, the quantization options and the calibration images (names and
bytes) - and the code that makes it: edgepose's version and the bytes of its Python sources, so a
checkout that changed the exporter or the quantizer (same version string) never reuses an old file.
Same inputs -> same file name -> reused; any change -> a new file. Entries are written by
export/quantize atomically, so an existing file is always complete. Default folder: `.bench_cache/`
in the current directory (`edgepose bench --cache-dir` changes it); deleting it is always safe.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edgepose import __version__
from edgepose.errors import OutputError
from edgepose.fsio import file_digest

DEFAULT_CACHE_DIR = Path(".bench_cache")


PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the installed or checked-out edgepose package


@functools.cache
def code_digest(root: Path = PACKAGE_ROOT) -> str:
    """Hex digest of every .py file under `root` (relative path and bytes, in sorted order): ~100 small
    files, read once per process."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def make_key(parts: dict[str, object], files: Iterable[Path] = ()) -> str:
    """Hex key of JSON-able `parts` (plus the edgepose version and code_digest) and the names and bytes of
    `files`."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {"edgepose": __version__, "code": code_digest(), **parts}, sort_keys=True, default=str
        ).encode()
    )
    for p in files:
        h.update(p.name.encode() + b"\0" + file_digest(p).encode())
    return h.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


@dataclass
class BenchCache:
    """Files under `root`, named `<stem>-<key[:16]>.onnx`; `made` lists the entries this run created."""

    root: Path = DEFAULT_CACHE_DIR
    made: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)

    def path(self, stem: str, key: str) -> Path:
        return self.root / f"{_slug(stem)}-{key[:16]}.onnx"

    def get_or_make(self, stem: str, key: str, make: Callable[[Path], object]) -> tuple[Path, bool]:
        """The cached file for `key`, calling `make(path)` to write it when missing; (path, was_cached)."""
        target = self.path(stem, key)
        if target.is_file():
            self.reused.append(target)
            return target, True
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create the bench cache folder {self.root} ({exc.strerror}); pass --cache-dir DIR"
            ) from exc
        make(target)
        self.made.append(target)
        return target, False
