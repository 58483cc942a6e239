"""`edgepose train`: the YOLO-Pose ReLU training recipe (also under `torchrun -m edgepose train`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from edgepose.cli import app
from edgepose.cli._common import console, err_console, handle_errors
from edgepose.errors import ConfigError, ModelFileError, OutputError

_LOG_EVERY = 25  # steps between plain progress lines when stderr is not a terminal (logs)


def options_from_dict(d: dict[str, Any]) -> Any:
    """TrainOptions saved in a checkpoint -> TrainOptions (nested configs rebuilt, lists -> tuples)."""
    from edgepose.train.augment import AugmentConfig
    from edgepose.train.loss import LossWeights
    from edgepose.train.options import TrainOptions

    d = dict(d)
    aug = {k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("aug", {}).items()}
    from edgepose.train.options import OptimizerKind

    if "optimizer" in d:
        d["optimizer"] = OptimizerKind(d["optimizer"])
    known = set(TrainOptions.__dataclass_fields__)
    return TrainOptions(
        aug=AugmentConfig(**aug),
        loss=LossWeights(**d.pop("loss", {})),
        **{k: v for k, v in d.items() if k in known},
    )


def _progress_callbacks(epochs: int) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgepose.train.options import TrainCallbacks

    progress = Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[losses]}  {task.fields[speed]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task: dict[str, Any] = {}
    tty = err_console.is_terminal

    def on_start(facts: dict[str, Any]) -> None:
        err_console.print(
            f"training on {facts['device']} x{facts['world_size']}: {facts['images']} images, "
            f"{facts['steps_per_epoch']} steps/epoch, epochs {facts['start_epoch'] + 1}..{facts['epochs']}",
            highlight=False,
        )
        progress.start()

    def on_step(epoch: int, step: int, steps: int, losses: dict[str, float], ips: float) -> None:
        text = " ".join(f"{k} {v:.4f}" for k, v in losses.items())
        if "id" not in task or task["epoch"] != epoch:
            if "id" in task:
                progress.remove_task(task["id"])
            task["id"] = progress.add_task(
                "", total=steps, epoch=f"{epoch + 1}/{epochs}", losses="", speed=""
            )
            task["epoch"] = epoch
        progress.update(task["id"], completed=step, losses=text, speed=f"{ips:.1f} img/s")
        if not tty and (step % _LOG_EVERY == 0 or step == steps):
            err_console.print(
                f"epoch {epoch + 1}/{epochs} step {step}/{steps} {text} {ips:.1f} img/s", highlight=False
            )

    def on_epoch(rec: dict[str, Any]) -> None:
        ap = f"val AP {rec['val_ap']:.4f} AP50 {rec['val_ap50']:.4f}" if "val_ap" in rec else "no val set"
        err_console.print(
            f"epoch {rec['epoch']}/{epochs}: {ap}, {rec['train_img_per_s']:.1f} img/s, "
            f"{rec['epoch_s']:.0f} s",
            highlight=False,
        )

    def on_final(res: dict[str, Any]) -> None:
        progress.stop()

    return progress, TrainCallbacks(on_start=on_start, on_step=on_step, on_epoch=on_epoch, on_final=on_final)


@app.command()
@handle_errors
def train(
    data: Annotated[
        str, typer.Option("--data", help="Training set: COCO JSON, or a folder (COCO or YOLO-pose).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Run folder: best.pt, last.pt, metrics.jsonl, results.json.")
    ],
    config: Annotated[
        str | None,
        typer.Option("--config", help="Model YAML or name (edgepose-n); default: from --init-from."),
    ] = None,
    val: Annotated[
        str | None, typer.Option("--val", help="Validation set (same formats); OKS AP per epoch.")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Epochs in total (default 100; with --resume: as saved).")
    ] = None,
    img: Annotated[
        int | None, typer.Option("--img", help="Input size; default: the config's input_size.")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="Images per step (per process under torchrun).")] = 32,
    resume: Annotated[bool, typer.Option("--resume", help="Continue OUT/last.pt (same options).")] = False,
    init_from: Annotated[
        Path | None,
        typer.Option(
            "--init-from",
            help="Start from this checkpoint's weights (fine-tune; biases warm up from 0, not 0.1).",
        ),
    ] = None,
    activation: Annotated[
        str | None,
        typer.Option("--activation", help="relu | relu6 | silu: override the config's activation."),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Data-loading processes.")] = 2,
    device: Annotated[str, typer.Option("--device", help="cpu | cuda | cuda:N.")] = "cpu",
    optimizer: Annotated[
        str, typer.Option("--optimizer", help="sgd (the recipe, nesterov) | adamw (try --lr 0.002).")
    ] = "sgd",
    lr: Annotated[float, typer.Option("--lr", help="Base learning rate.")] = 0.01,
    warmup_epochs: Annotated[float, typer.Option("--warmup-epochs", help="LR warmup length.")] = 1.0,
    mosaic: Annotated[float, typer.Option("--mosaic", help="Mosaic probability.")] = 1.0,
    close_mosaic: Annotated[int, typer.Option("--close-mosaic", help="Last N epochs without mosaic.")] = 1,
    val_images: Annotated[
        int | None, typer.Option("--val-images", help="Validate each epoch on the first N; the best on all.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for init, order and augmentation.")] = 0,
    kpt_weight: Annotated[
        float, typer.Option("--kpt-weight", help="Weight of the OKS keypoint loss (paper: 0.1).")
    ] = 0.1,
    kpt_l1: Annotated[
        float,
        typer.Option("--kpt-l1", help="Weight of an extra L1 keypoint loss (not in the paper; 0 = off)."),
    ] = 0.0,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="Cap steps per epoch (smoke runs).")
    ] = None,
    stop_after: Annotated[
        int | None,
        typer.Option("--stop-after", help="Stop after epoch N; --resume continues the same schedule."),
    ] = None,
) -> None:
    """Train a YOLO-Pose model; every epoch validates and writes best.pt / last.pt atomically."""
    import dataclasses
    import os

    import torch

    from edgepose.data.convert import read_dataset
    from edgepose.nn.checkpoint import load_checkpoint
    from edgepose.nn.config import Activation, resolve_config
    from edgepose.train.augment import AugmentConfig
    from edgepose.train.loop import LAST
    from edgepose.train.loop import train as run_training
    from edgepose.train.loss import LossWeights
    from edgepose.train.options import OptimizerKind, TrainOptions, check_options, check_people

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("WORLD_SIZE", "1"))))
    if resume:
        last = out / LAST
        if not last.is_file():
            raise ModelFileError(f"{last}: nothing to resume; start a new run without --resume")
        ck = load_checkpoint(last)
        if not ck.train_state or "options" not in ck.train_state:
            raise ModelFileError(f"{last} has no training state; start a new run without --resume")
        cfg = ck.cfg
        opts = options_from_dict(ck.train_state["options"])
        opts = dataclasses.replace(
            opts, epochs=epochs or opts.epochs, workers=workers, device=device, stop_after=stop_after
        )
    else:
        if config is None and init_from is None:
            raise ConfigError("no model given; pass --config edgepose-n (or --init-from CKPT)")
        cfg = resolve_config(config) if config is not None else load_checkpoint(init_from).cfg  # type: ignore[arg-type]
        if activation is not None:
            choices = [a.value for a in Activation]
            if activation.lower() not in choices:
                raise ConfigError(f"--activation {activation!r} is unknown; use one of {', '.join(choices)}")
            cfg = dataclasses.replace(cfg, activation=Activation(activation.lower()))
        kinds = [k.value for k in OptimizerKind]
        if optimizer.lower() not in kinds:
            raise ConfigError(f"--optimizer {optimizer!r} is unknown; use one of {', '.join(kinds)}")
        opts = TrainOptions(
            epochs=100 if epochs is None else epochs, batch=batch, workers=workers,
            img=cfg.input_size if img is None else img,
            device=device, optimizer=OptimizerKind(optimizer.lower()), lr0=lr, warmup_epochs=warmup_epochs,
            close_mosaic=close_mosaic,
            aug=AugmentConfig(mosaic=mosaic), loss=LossWeights(kpt=kpt_weight, kpt_l1=kpt_l1),
            val_max_images=val_images, seed=seed, max_steps_per_epoch=max_steps, stop_after=stop_after,
        )  # fmt: skip
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ConfigError(
                f"--out {out} already exists and is not empty; pass --resume or choose another --out"
            )
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available in this torch build; use --device cpu")
    check_options(cfg, opts)
    train_set = read_dataset(data)
    check_people(train_set, data, cfg)
    val_set = read_dataset(val) if val is not None else None
    if val_set is not None:
        check_people(val_set, val, cfg)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    created = main_rank and not out.exists()
    if main_rank:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # no permission, read-only disk, a file in the way: user errors
            raise OutputError(f"cannot create --out {out} ({exc.strerror}); choose another --out") from exc
    progress, callbacks = _progress_callbacks(opts.epochs)
    try:
        result = run_training(cfg, train_set, val_set, out, opts, resume=resume, init_from=init_from,
                              callbacks=callbacks)  # fmt: skip
    except BaseException:
        progress.stop()
        if created and not (out / LAST).exists():
            shutil.rmtree(out, ignore_errors=True)  # nothing worth keeping: leave no half-made run folder
        raise
    progress.stop()
    if main_rank:
        m = result.metrics
        if stop_after is not None and stop_after < opts.epochs:
            console.print(
                f"stopped after epoch {stop_after}; continue with --resume --out {out}",
                soft_wrap=True,
                highlight=False,
            )
            return
        ap = f"OKS AP {m['ap']:.4f} (AP50 {m['ap50']:.4f})" if "ap" in m else "no validation set"
        console.print(
            f"best epoch {result.best_epoch}: {ap}; {out / 'best.pt'}  ({result.wall_s:.0f} s)",
            soft_wrap=True,
            highlight=False,
        )
