"""Checkpoints: weights + config + spec + metrics in one file that loads with `weights_only=True`.

Only tensors, dicts, lists, str, int, float and None go in, so loading never unpickles code.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgepose import __version__
from edgepose.errors import ConfigError, ModelFileError
from edgepose.fsio import atomic_path
from edgepose.nn.config import ModelConfig, config_from_dict, config_to_dict
from edgepose.nn.model import PoseModel, build_model
from edgepose.spec import PoseSpec

CHECKPOINT_FORMAT = "edgepose-checkpoint"
FORMAT_VERSION = 1
_FIX = "pass a checkpoint (.pt) from `edgepose train`"


@dataclass
class LoadedCheckpoint:
    model: PoseModel  # eval mode
    cfg: ModelConfig
    spec: PoseSpec
    epoch: int
    metrics: dict[str, float]
    train_state: dict[str, Any] | None
    path: Path


def save_checkpoint(
    path: str | Path,
    model: PoseModel,
    spec: PoseSpec,
    *,
    epoch: int,
    metrics: dict[str, float],
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write atomically. `model` holds the deployable weights (the EMA ones when training uses EMA);
    `train_state` (optimizer, EMA, raw model state for --resume) must itself be weights_only-safe."""
    from edgepose.nn.erpose import ERPoseModel

    model = getattr(model, "module", model)  # unwrap DDP
    if not isinstance(model, (PoseModel, ERPoseModel)):
        raise TypeError(f"save_checkpoint expects a PoseModel or ERPoseModel, got {type(model).__name__}")
    state = {
        k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
        for k, v in model.state_dict().items()
    }
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "edgepose_version": __version__,
        "config": config_to_dict(model.cfg),
        "spec": spec.to_dict(),
        "model": state,
        "epoch": int(epoch),
        "metrics": {str(k): float(v) for k, v in metrics.items()},
        "train_state": train_state,
    }
    _check_plain(train_state, "train_state")
    # Serialise in memory, write through Python: torch's own file writer reports a full disk as a
    # RuntimeError ("unexpected pos ..."), Python raises OSError(ENOSPC), which atomic_path makes one line.
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getbuffer())
    return Path(path)


_PLAIN = (torch.Tensor, str, int, float, bool, type(None), torch.dtype, torch.device)


def _check_plain(obj: object, where: str) -> None:
    """Fail at save time (not at --resume time) on anything `torch.load(weights_only=True)` rejects."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"checkpoint {where} is a {type(obj).__name__}; store only tensors and plain values")


def _sniff(p: Path) -> None:
    """Reject what is clearly not a torch file, with a message naming what it is."""
    if not p.exists():
        raise ModelFileError(f"{p}: no such file; {_FIX}")
    if not p.is_file():
        raise ModelFileError(f"{p} is a folder, not a checkpoint; {_FIX} (e.g. RUN_DIR/best.pt)")
    try:
        with p.open("rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise ModelFileError(f"{p}: cannot read the file ({exc.strerror}); check its permissions") from exc
    if not head:
        raise ModelFileError(f"{p} is empty (0 bytes); {_FIX}")
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch zip format / legacy pickle
        return
    # An ONNX ModelProto starts with field 1 (ir_version, a small varint): bytes 0x08, 1..20.
    if p.suffix.lower() == ".onnx" or (len(head) > 1 and head[0] == 0x08 and 1 <= head[1] <= 20):
        raise ModelFileError(f"{p} is an ONNX model; {_FIX}")
    raise ModelFileError(f"{p} is not a PyTorch checkpoint (unrecognised file contents); {_FIX}")


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> LoadedCheckpoint:
    """Load with `torch.load(weights_only=True)` and rebuild the model (eval mode)."""
    p = Path(path)
    _sniff(p)
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelFileError(
            f"{p} holds pickled objects other than weights (another tool's checkpoint?); {_FIX}"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelFileError(
            f"{p} could not be read as a PyTorch checkpoint (truncated or corrupt?); {_FIX}"
        ) from exc
    if _is_state_dict(obj):
        raise ModelFileError(
            f"{p} is a plain state_dict without config or spec, not an edgepose checkpoint; {_FIX}"
        )
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        keys = sorted(map(str, obj))[:5] if isinstance(obj, dict) else type(obj).__name__
        raise ModelFileError(f"{p} is not an edgepose checkpoint (found {keys}); {_FIX}")
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{p} has checkpoint format_version {version!r}, this edgepose reads <= {FORMAT_VERSION}; "
            "upgrade edgepose"
        )
    try:
        cfg = config_from_dict(obj["config"], source=f"{p} config")
        spec = PoseSpec.from_dict(obj["spec"])
        model = build_model(cfg)
        model.load_state_dict(obj["model"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError, ConfigError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{p} is a damaged edgepose checkpoint ({first}); {_FIX}") from exc
    model.to(map_location).eval()
    return LoadedCheckpoint(
        model=model,
        cfg=cfg,
        spec=spec,
        epoch=int(obj.get("epoch", 0)),
        metrics=dict(obj.get("metrics") or {}),
        train_state=obj.get("train_state"),
        path=p,
    )
