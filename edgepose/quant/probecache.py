"""The task-sensitivity probe runs once per model and calibration set; the next flavour reuses it.

`quantize --mixed --high-precision int16` and `--high-precision float` rank the same layers on the
same images (the ranking does not depend on the flavour), so the second run reuses the first one's
ranking instead of spending ~100 runs of the network again. The cache sits beside the float model as
MODEL.probe.json, keyed by everything the ranking depends on: the model file's bytes, the
calibration files (names, sizes, modification times), the calibration method and count, the probe
image count, the kept 8-bit optimizations and the onnxruntime and edgepose versions. Any change, and
the probe runs again. It is written together with the quantized model (never alone), and a cache
that cannot be read or written is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from edgepose import fsio
from edgepose.errors import OutputError


def cache_path(model_path: str | os.PathLike[str]) -> Path:
    p = Path(model_path)
    return p.with_name(f"{p.stem}.probe.json")


def probe_key(model_path: str | os.PathLike[str], calib_paths: Sequence[Path], **settings: object) -> str:
    """A digest of what the ranking depends on (see the module docstring)."""
    h = hashlib.sha256()
    h.update(fsio.file_digest(model_path).encode())
    for p in calib_paths:
        st = p.stat()
        h.update(f"{p.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def load(model_path: str | os.PathLike[str], key: str, layers: Sequence[str]) -> list[float] | None:
    """The cached sensitivities for exactly these layers and this key, else None."""
    path = cache_path(model_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or data.get("layers") != list(layers):
        return None
    values = data.get("sensitivity")
    if not isinstance(values, list) or len(values) != len(layers):
        return None
    return [float(v) for v in values]


def save(
    model_path: str | os.PathLike[str], key: str, layers: Sequence[str], sensitivity: Sequence[float]
) -> bool:
    """Write the cache; False (and nothing written) when the folder is not writable."""
    text = json.dumps({"key": key, "layers": list(layers), "sensitivity": list(sensitivity)}) + "\n"
    try:
        fsio.write_text(cache_path(model_path), text)
    except OutputError:
        return False
    return True
