"""What a run keeps on disk besides the weights, and how it starts from another run: the training state
in last.pt (--resume), metrics.jsonl, and --init-from's weight transfer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from edgepose.errors import ModelFileError
from edgepose.fsio import write_text
from edgepose.nn.checkpoint import load_checkpoint
from edgepose.nn.model import PoseModel
from edgepose.train.ema import ModelEMA, unwrap
from edgepose.train.options import TrainOptions, options_to_dict

BEST, LAST, METRICS, RESULTS = "best.pt", "last.pt", "metrics.jsonl", "results.json"


def init_weights_from(model: PoseModel, path: str | Path) -> int:
    """Copy every tensor of checkpoint `path` whose name and shape match; returns how many were copied.

    Activations carry no weights, so a SiLU checkpoint fine-tunes into a ReLU config this way.
    """
    ck = load_checkpoint(path)
    src = ck.model.state_dict()
    dst = model.state_dict()
    matched = {k: v for k, v in src.items() if k in dst and dst[k].shape == v.shape}
    if not any(k.startswith("backbone.") for k in matched):
        raise ModelFileError(
            f"{path}: none of its backbone weights fit model '{model.cfg.name}' (checkpoint is "
            f"'{ck.cfg.name}'); pass --config {ck.cfg.name} or a checkpoint of the same variant"
        )
    model.load_state_dict(matched, strict=False)
    return len(matched)


def read_history(path: Path, upto: int) -> list[dict[str, Any]]:
    """metrics.jsonl's records up to epoch `upto` (a resumed run rewrites the epochs after it)."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if int(r.get("epoch", 0)) <= upto]


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def training_state(
    model: torch.nn.Module,
    ema: ModelEMA,
    optimizer: torch.optim.Optimizer,
    opts: TrainOptions,
    best_fit: float,
    best_epoch: int,
) -> dict[str, Any]:
    """last.pt's `train_state`: the trained (not averaged) weights, optimizer, EMA count, best so far and
    the options (plain values: checkpoints load with weights_only)."""
    return {
        "model": {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "ema_updates": ema.updates,
        "best_fitness": best_fit,
        "best_epoch": best_epoch,
        "options": options_to_dict(opts),
    }


def restore_state(
    out: Path, device: torch.device, model: PoseModel, ema: ModelEMA, optimizer: torch.optim.Optimizer
) -> tuple[int, float, int, list[dict[str, Any]]]:
    """--resume: load model, EMA and optimizer from out/last.pt; returns the epoch, the best fitness and
    epoch so far, and the history."""
    last = out / LAST
    ck = load_checkpoint(last, map_location=str(device))
    state = ck.train_state or {}
    if "model" not in state or "optimizer" not in state:
        raise ModelFileError(f"{last} has no training state; start a new run without --resume")
    model.load_state_dict(state["model"])
    ema.ema.load_state_dict(ck.model.state_dict())
    ema.updates = int(state.get("ema_updates", 0))
    optimizer.load_state_dict(state["optimizer"])
    best = float(state.get("best_fitness", -1.0)), int(state.get("best_epoch", 0))
    return ck.epoch, *best, read_history(out / METRICS, ck.epoch)
