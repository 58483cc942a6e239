"""What a training run is told: TrainOptions (everything but the model and the data) with the augmentation
and loss settings inside it, the progress hooks, and the option/data checks that run before anything is
written. Standard library only, so `edgepose train --help` shows these defaults without importing torch;
the optimizer and LR schedule built from them are in `edgepose.train.optim`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from edgepose.errors import ConfigError, DataError

if TYPE_CHECKING:
    from edgepose.data.types import PoseDataset
    from edgepose.nn.config import ModelConfig


class OptimizerKind(str, enum.Enum):
    SGD = "sgd"  # the recipe: nesterov, momentum 0.937
    ADAMW = "adamw"  # betas (momentum, 0.999); Ultralytics picks it for short runs (< 10k steps)


@dataclass(frozen=True)
class AugmentConfig:
    """Defaults: the recipe of issue 3 (YOLOv5 gains for HSV)."""

    mosaic: float = 1.0  # probability of a 4-image mosaic
    scale: tuple[float, float] = (0.5, 1.5)
    translate: float = 0.1  # fraction of the output size
    flip: float = 0.5
    hsv: tuple[float, float, float] = (0.015, 0.7, 0.4)  # hue, saturation, value gains


@dataclass(frozen=True)
class LossWeights:
    """Defaults from the YOLO-Pose paper (obj as YOLOv5)."""

    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    kpt: float = 0.1
    kconf: float = 0.5
    # Not in the paper: L1 keypoint distance / sqrt(box area). 1 - OKS has no gradient for keypoints
    # many sigmas away (all of them, at init), so short CPU schedules add this term; 0 = paper recipe.
    kpt_l1: float = 0.0


@dataclass(frozen=True)
class TrainOptions:
    """Everything about a run except the model config and the data."""

    epochs: int = 100
    batch: int = 32
    img: int = 256
    workers: int = 2
    device: str = "cpu"
    optimizer: OptimizerKind = OptimizerKind.SGD
    lr0: float = 0.01  # SGD; ~0.002 for AdamW
    lrf: float = 0.01  # final LR = lr0 * lrf (cosine)
    momentum: float = 0.937
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    warmup_bias_lr: float = 0.1
    warmup_momentum: float = 0.8
    close_mosaic: int = 1  # the last N epochs train without mosaic (images as the model sees them)
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    val_max_images: int | None = (
        None  # per-epoch validation on the first N images; the best on all at the end
    )
    val_batch: int = 16
    val_every: int = 1  # validate every N epochs (and after the last)
    seed: int = 0
    max_steps_per_epoch: int | None = None  # tests and smoke runs
    stop_after: int | None = None  # end this invocation after epoch N (schedule still spans `epochs`)


@dataclass
class TrainCallbacks:
    """Hooks for the CLI's progress display; the library itself never prints."""

    on_start: Callable[[dict[str, Any]], None] | None = None  # run facts: steps per epoch, device, ...
    on_step: Callable[[int, int, int, dict[str, float], float], None] | None = (
        None  # epoch, step, steps, losses, img/s
    )
    on_epoch: Callable[[dict[str, Any]], None] | None = None  # the metrics.jsonl record
    on_final: Callable[[dict[str, Any]], None] | None = None  # results.json


def check_options(cfg: ModelConfig, opts: TrainOptions) -> None:
    """ConfigError for option values that cannot train; call before anything is written."""
    if opts.batch < 1:
        raise ConfigError(f"--batch {opts.batch} must be >= 1; use e.g. --batch 16")
    if opts.epochs < 1:
        raise ConfigError(f"--epochs {opts.epochs} must be >= 1; use e.g. --epochs 100")
    m = max(cfg.strides)
    if opts.img < m or opts.img % m:
        near = max(m, round(opts.img / m) * m)
        raise ConfigError(
            f"--img {opts.img} is not divisible by the largest stride {m} of {cfg.name}; "
            f"use e.g. --img {near}"
        )
    if opts.workers < 0:
        raise ConfigError(f"--workers {opts.workers} must be >= 0 (0 loads data in the main process)")
    if opts.val_max_images is not None and opts.val_max_images < 1:
        raise ConfigError(f"--val-images {opts.val_max_images} must be >= 1; omit it to validate on all")
    if opts.close_mosaic < 0:
        raise ConfigError(f"--close-mosaic {opts.close_mosaic} must be >= 0")
    if not (opts.lr0 >= 0 and math.isfinite(opts.lr0)):  # NaN fails `>= 0`; 0 freezes the weights
        raise ConfigError(f"--lr {opts.lr0} must be a finite number >= 0; use e.g. --lr 0.01")
    if not (opts.warmup_epochs >= 0 and math.isfinite(opts.warmup_epochs)):
        raise ConfigError(f"--warmup-epochs {opts.warmup_epochs} must be >= 0; use e.g. --warmup-epochs 1")
    if not 0.0 <= opts.aug.mosaic <= 1.0:
        raise ConfigError(f"--mosaic {opts.aug.mosaic} must be a probability in [0, 1]")
    for opt, w in (("--kpt-weight", opts.loss.kpt), ("--kpt-l1", opts.loss.kpt_l1)):
        if not (w >= 0 and math.isfinite(w)):
            raise ConfigError(f"{opt} {w} must be a finite weight >= 0")
    from edgepose.nn.config import HeadKind  # torch-free; kept out of this module's import time

    if cfg.head is HeadKind.ERPOSE and opts.loss != LossWeights():
        # The YOLO-Pose loss weights do not apply to the ER-Pose loss (edgepose.train.erpose_loss).
        flags = {"kpt": "--kpt-weight", "kpt_l1": "--kpt-l1"}
        name = next(k for k, v in asdict(opts.loss).items() if v != getattr(LossWeights(), k))
        opt = flags.get(name, f"loss weight '{name}'")
        raise ConfigError(
            f"{opt} is a YOLO-Pose loss option; {cfg.name} has the ER-Pose head, whose loss has its own "
            f"weights: drop {opt}"
        )
    if opts.max_steps_per_epoch is not None and opts.max_steps_per_epoch < 1:
        raise ConfigError(f"--max-steps {opts.max_steps_per_epoch} must be >= 1; omit it for full epochs")
    if opts.device != "cpu" and not opts.device.startswith("cuda"):
        raise ConfigError(f"--device {opts.device} is not supported; use cpu, cuda or cuda:N")


def check_people(data: PoseDataset, source: str, cfg: ModelConfig | None = None) -> None:
    """DataError when `data` has no person annotations or the wrong number of keypoints."""
    if not any(r.num_people for r in data.records):
        raise DataError(
            f"{source}: no person annotations in {len(data)} images; pass a dataset with labelled people "
            "(e.g. `edgepose data synth`)"
        )
    if cfg is not None and len(data.keypoint_names) != cfg.num_keypoints:
        raise DataError(
            f"{source}: {len(data.keypoint_names)} keypoints per person but model {cfg.name} predicts "
            f"{cfg.num_keypoints}; set num_keypoints in the model YAML"
        )


def options_to_dict(opts: TrainOptions) -> dict[str, Any]:
    """Plain values (weights_only checkpoints hold nothing else); `options_from_dict` reads them back."""
    d = asdict(opts)
    d["optimizer"] = opts.optimizer.value
    return d


def options_from_dict(d: dict[str, Any]) -> TrainOptions:
    """TrainOptions saved by `options_to_dict` (nested configs rebuilt, lists -> tuples); keys this version
    no longer knows are dropped, so an older run still resumes."""
    d = dict(d)
    aug = {k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("aug", {}).items()}
    if "optimizer" in d:
        d["optimizer"] = OptimizerKind(d["optimizer"])
    known = {f.name for f in fields(TrainOptions)}
    return TrainOptions(
        aug=AugmentConfig(**aug),
        loss=LossWeights(**d.pop("loss", {})),
        **{k: v for k, v in d.items() if k in known},
    )
