"""A training run from files, as `edgepose train` starts it: the model config and options of a new run or of
`--resume`, the checks that run before anything is written, the run folder, then `loop.train`."""

from __future__ import annotations

import dataclasses
import os
import shutil
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


def resume_run(
    out: Path, *, epochs: int | None, workers: int, device: str, stop_after: int | None
) -> tuple[ModelConfig, TrainOptions]:
    """The config and options saved in OUT/last.pt; a new `epochs` stretches the schedule, and the
    machine-side options (workers, device, stop_after) are this invocation's."""
    from edgepose.nn.checkpoint import load_checkpoint

    last = out / LAST
    if not last.is_file():
        raise ModelFileError(f"{last}: nothing to resume; start a new run without --resume")
    ck = load_checkpoint(last)
    if not ck.train_state or "options" not in ck.train_state:
        raise ModelFileError(f"{last} has no training state; start a new run without --resume")
    opts = options_from_dict(ck.train_state["options"])
    opts = dataclasses.replace(
        opts, epochs=epochs or opts.epochs, workers=workers, device=device, stop_after=stop_after
    )
    return ck.cfg, opts


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
