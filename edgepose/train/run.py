"""A training run from files, as `edgepose train` starts it: the model config and options of a new run or of
`--resume`, the checks that run before anything is written, the run folder, then `loop.train`."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edgepose.errors import ConfigError, ModelFileError, OutputError
from edgepose.nn.config import Activation, ModelConfig
from edgepose.train import loop
from edgepose.train.loop import LAST, TrainResult
from edgepose.train.options import (
    TrainCallbacks,
    TrainOptions,
    check_options,
    check_people,
    options_from_dict,
)

# --resume continues a run as it was started. These options may differ from the saved ones: the length of
# the schedule (--epochs; the cosine is stretched to it) and where and how far this invocation runs.
RESUME_APPLIES = ("--epochs", "--workers", "--device", "--stop-after")


def _saved(cfg: ModelConfig, opts: TrainOptions) -> dict[str, object]:
    """The run's value of every option that shapes it (and so cannot change when it is resumed)."""
    return {
        "--config": cfg.name, "--activation": cfg.activation, "--img": opts.img, "--batch": opts.batch,
        "--max-steps": opts.max_steps_per_epoch, "--optimizer": opts.optimizer, "--lr": opts.lr0,
        "--warmup-epochs": opts.warmup_epochs, "--mosaic": opts.aug.mosaic,
        "--close-mosaic": opts.close_mosaic, "--val-images": opts.val_max_images, "--seed": opts.seed,
        "--kpt-weight": opts.loss.kpt, "--kpt-l1": opts.loss.kpt_l1,
    }  # fmt: skip


def _shown(value: object) -> str:
    return "none" if value is None else str(getattr(value, "value", value))


@dataclass(frozen=True)
class Resumed:
    """What `--resume` continues: the run's config and options (with the applied changes), how many epochs
    it has done, and the changes applied, one `--opt NEW (was OLD)` each."""

    cfg: ModelConfig
    opts: TrainOptions
    done: int
    applied: tuple[str, ...]

    @property
    def finished(self) -> bool:
        return self.done >= self.opts.epochs


def resume_run(out: Path, given: Mapping[str, object]) -> Resumed:
    """The config and options saved in OUT/last.pt, with the options of this command line (`given`: flag ->
    value, only those typed) that may change applied; any other typed option that differs from the run's
    is refused, all of them in one ConfigError line."""
    from edgepose.nn.checkpoint import load_checkpoint

    last = out / LAST
    if not last.is_file():
        raise ModelFileError(f"{last}: nothing to resume; start a new run without --resume")
    ck = load_checkpoint(last)
    if not ck.train_state or "options" not in ck.train_state:
        raise ModelFileError(f"{last} has no training state; start a new run without --resume")
    cfg, opts = ck.cfg, options_from_dict(ck.train_state["options"])
    saved = _saved(cfg, opts)
    if "--config" in given and given["--config"] is not None:
        from edgepose.nn.config import resolve_config

        given = {**given, "--config": resolve_config(str(given["--config"])).name}  # a YAML path or a name
    refused = [f"{flag} {_shown(v)} (run: {_shown(saved[flag])})" for flag, v in given.items()
               if flag in saved and v != saved[flag]]  # fmt: skip
    if "--init-from" in given:
        refused.append(f"--init-from {given['--init-from']} (a new run's starting weights)")
    if refused:
        raise ConfigError(
            f"--resume continues {out} as it was started; {', '.join(refused)} cannot change mid-run: drop "
            f"{'it' if len(refused) == 1 else 'them'}, or start a new run with another --out (--init-from "
            f"{last} starts it from these weights)"
        )
    was = {"--epochs": opts.epochs, "--workers": opts.workers, "--device": opts.device, "--stop-after": None}
    applied = tuple(f"{flag} {_shown(given[flag])} (was {_shown(was[flag])})" for flag in RESUME_APPLIES
                    if flag in given and given[flag] != was[flag] and flag != "--stop-after")  # fmt: skip
    opts = dataclasses.replace(
        opts,
        epochs=int(given.get("--epochs") or opts.epochs),  # type: ignore[call-overload]
        workers=given.get("--workers", opts.workers),  # type: ignore[arg-type]
        device=given.get("--device", opts.device),  # type: ignore[arg-type]
        stop_after=given.get("--stop-after"),  # type: ignore[arg-type]
    )
    if opts.stop_after is not None and opts.stop_after <= ck.epoch < opts.epochs:
        raise ConfigError(
            f"--stop-after {opts.stop_after}: {out} has already trained {ck.epoch} epochs; pass a later "
            "epoch or leave it out"
        )
    return Resumed(cfg, opts, ck.epoch, applied)


def new_run_config(
    out: Path, *, config: str | None, init_from: Path | None, activation: Activation | None
) -> ModelConfig:
    """The model of a new run: a registry name or YAML (else the --init-from checkpoint's config), with
    the activation overridden when asked; OUT must be new or empty."""
    from edgepose.nn.config import resolve_config

    if config is None and init_from is None:
        raise ConfigError("no model given; pass --config edgepose-n (or --init-from CKPT)")
    if config is not None:
        cfg = resolve_config(config)
    else:
        from edgepose.nn.checkpoint import load_checkpoint

        ck = load_checkpoint(init_from)  # type: ignore[arg-type]
        cfg = dataclasses.replace(ck.cfg, input_size=ck.spec.input_size[0])  # the size it was trained at
    if activation is not None:
        cfg = dataclasses.replace(cfg, activation=activation)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"--out {out} already exists and is not empty; pass --resume or choose another --out"
        )
    return cfg


def train_from_files(
    cfg: ModelConfig,
    opts: TrainOptions,
    data: str,
    val: str | None,
    out: Path,
    *,
    resume: bool = False,
    init_from: Path | None = None,
    callbacks: TrainCallbacks | None = None,
) -> TrainResult:
    """Check everything, read the datasets, make OUT and train; a new run that fails before its first
    checkpoint leaves no run folder behind."""
    import torch

    from edgepose.data.convert import read_dataset

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("WORLD_SIZE", "1"))))
    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {opts.device}: CUDA is not available in this torch build; use --device cpu"
        )
    check_options(cfg, opts)
    train_set = read_dataset(data)
    check_people(train_set, data, cfg)
    val_set = read_dataset(val) if val is not None else None
    if val_set is not None:
        check_people(val_set, val, cfg)  # type: ignore[arg-type]
    main_rank = int(os.environ.get("RANK", "0")) == 0
    created = main_rank and not out.exists()
    if main_rank:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # no permission, read-only disk, a file in the way: user errors
            raise OutputError(f"cannot create --out {out} ({exc.strerror}); choose another --out") from exc
    try:
        return loop.train(
            cfg, train_set, val_set, out, opts, resume=resume, init_from=init_from, callbacks=callbacks
        )
    except BaseException:
        if created and not (out / LAST).exists():
            shutil.rmtree(out, ignore_errors=True)  # nothing worth keeping: leave no half-made run folder
        raise
