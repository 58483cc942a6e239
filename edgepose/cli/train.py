"""`edgepose train`: the YOLO-Pose ReLU training recipe (also under `torchrun -m edgepose train`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from edgepose.cli._app import app
from edgepose.cli._common import console, err_console, handle_errors
from edgepose.nn.config import Activation, ModelConfig
from edgepose.train.options import AugmentConfig, LossWeights, OptimizerKind, TrainOptions

_LOG_EVERY = 25  # steps between plain progress lines when stderr is not a terminal (logs)


def _progress_callbacks(epochs: int) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgepose.data.coco_eval import points
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
        ap = (
            f"val AP {points(rec['val_ap'])} AP50 {points(rec['val_ap50'])}"
            if "val_ap" in rec
            else "no val set"
        )
        err_console.print(
            f"epoch {rec['epoch']}/{epochs}: {ap}, {rec['train_img_per_s']:.1f} img/s, "
            f"{rec['epoch_s']:.0f} s",
            highlight=False,
        )

    def on_final(res: dict[str, Any]) -> None:
        progress.stop()

    return progress, TrainCallbacks(on_start=on_start, on_step=on_step, on_epoch=on_epoch, on_final=on_final)


def _typed(ctx: typer.Context, exclude: tuple[str, ...]) -> dict[str, object]:
    """`--flag -> value` of the options typed on this command line (not those left at their default)."""
    return {
        "--" + name.replace("_", "-"): value
        for name, value in ctx.params.items()
        if name not in exclude and getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"
    }


def _resume(ctx: typer.Context, out: Path, main_rank: bool) -> tuple[ModelConfig, TrainOptions] | None:
    """`--resume`: the run's config and options with this command line's changes applied (others are
    refused in one line); None, after saying so, when the run has finished."""
    from edgepose.train.run import resume_run

    resumed = resume_run(out, _typed(ctx, exclude=("data", "out", "val", "resume")))
    if resumed.finished:
        if main_rank:
            console.print(
                f"{out} has already trained {resumed.done} of {resumed.opts.epochs} epochs: nothing to do, "
                f"nothing written (to train longer: --resume --epochs N with N > {resumed.done})",
                soft_wrap=True, highlight=False,
            )  # fmt: skip
        return None
    if resumed.applied and main_rank:
        err_console.print(f"resuming {out} after epoch {resumed.done}: {', '.join(resumed.applied)}",
                          soft_wrap=True, highlight=False)  # fmt: skip
    return resumed.cfg, resumed.opts


# Options of `edgepose train` (typer reads the help, default and parser from each).
_DataOpt = Annotated[
    str, typer.Option("--data", help="Training set: COCO JSON, or a folder (COCO or YOLO-pose).")
]
_OutOpt = Annotated[
    Path, typer.Option("--out", help="Run folder: best.pt, last.pt, metrics.jsonl, results.json.")
]
_ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", help="Model name (edgepose-n) or YAML; default: from --init-from."),
]
_ValOpt = Annotated[
    str | None, typer.Option("--val", help="Validation set (same formats); OKS AP per epoch.")
]
_EpochsOpt = Annotated[
    int | None,
    typer.Option(
        "--epochs", help=f"Epochs in total (default {TrainOptions.epochs}; with --resume: as saved)."
    ),
]
_ImgOpt = Annotated[
    int | None,
    typer.Option(
        "--img",
        help="Input size; default: the config's input_size (--init-from: the size it was trained at).",
    ),
]
_BatchOpt = Annotated[int, typer.Option("--batch", help="Images per step (per process under torchrun).")]
_ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue OUT/last.pt as started (only --epochs, --workers, --device, --stop-after may change).",
    ),
]
_InitFromOpt = Annotated[
    Path | None,
    typer.Option(
        "--init-from",
        help="Start from this checkpoint's weights (fine-tune; biases warm up from 0, not 0.1).",
    ),
]
_ActivationOpt = Annotated[
    Activation | None,
    typer.Option("--activation", help="Override the config's activation.", case_sensitive=False),
]
_WorkersOpt = Annotated[int, typer.Option("--workers", help="Data-loading processes.")]
_DeviceOpt = Annotated[str, typer.Option("--device", help="cpu | cuda | cuda:N.")]
_OptimizerOpt = Annotated[
    OptimizerKind,
    typer.Option(
        "--optimizer", help="sgd: the recipe (nesterov); adamw: try --lr 0.002.", case_sensitive=False
    ),
]
_LrOpt = Annotated[float, typer.Option("--lr", help="Base learning rate.")]
_WarmupEpochsOpt = Annotated[float, typer.Option("--warmup-epochs", help="LR warmup length.")]
_MosaicOpt = Annotated[float, typer.Option("--mosaic", help="Mosaic probability.")]
_CloseMosaicOpt = Annotated[int, typer.Option("--close-mosaic", help="Last N epochs without mosaic.")]
_ValImagesOpt = Annotated[
    int | None, typer.Option("--val-images", help="Validate each epoch on the first N; the best on all.")
]
_SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for init, order and augmentation.")]
_KptWeightOpt = Annotated[
    float, typer.Option("--kpt-weight", help="Weight of the OKS keypoint loss (paper: 0.1).")
]
_KptL1Opt = Annotated[
    float,
    typer.Option("--kpt-l1", help="Weight of an extra L1 keypoint loss (not in the paper; 0 = off)."),
]
_MaxStepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Cap steps per epoch (smoke runs).")]
_StopAfterOpt = Annotated[
    int | None,
    typer.Option("--stop-after", help="Stop after epoch N; --resume continues the same schedule."),
]


@app.command()
@handle_errors
def train(
    ctx: typer.Context,
    data: _DataOpt,
    out: _OutOpt,
    config: _ConfigOpt = None,
    val: _ValOpt = None,
    epochs: _EpochsOpt = None,
    img: _ImgOpt = None,
    batch: _BatchOpt = TrainOptions.batch,
    resume: _ResumeOpt = False,
    init_from: _InitFromOpt = None,
    activation: _ActivationOpt = None,
    workers: _WorkersOpt = TrainOptions.workers,
    device: _DeviceOpt = TrainOptions.device,
    optimizer: _OptimizerOpt = TrainOptions.optimizer,
    lr: _LrOpt = TrainOptions.lr0,
    warmup_epochs: _WarmupEpochsOpt = TrainOptions.warmup_epochs,
    mosaic: _MosaicOpt = AugmentConfig.mosaic,
    close_mosaic: _CloseMosaicOpt = TrainOptions.close_mosaic,
    val_images: _ValImagesOpt = None,
    seed: _SeedOpt = TrainOptions.seed,
    kpt_weight: _KptWeightOpt = LossWeights.kpt,
    kpt_l1: _KptL1Opt = LossWeights.kpt_l1,
    max_steps: _MaxStepsOpt = None,
    stop_after: _StopAfterOpt = None,
) -> None:
    """Train a YOLO-Pose model; every epoch validates and writes best.pt / last.pt atomically."""
    from edgepose.data.coco_eval import points
    from edgepose.train.run import new_run_config, train_from_files

    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports
    if resume:
        resumed = _resume(ctx, out, main_rank)
        if resumed is None:
            return  # the run had finished: nothing to do, nothing written
        cfg, opts = resumed
    else:
        cfg = new_run_config(out, config=config, init_from=init_from, activation=activation)
        opts = TrainOptions(
            epochs=TrainOptions.epochs if epochs is None else epochs, batch=batch, workers=workers,
            img=cfg.input_size if img is None else img, device=device, optimizer=optimizer, lr0=lr,
            warmup_epochs=warmup_epochs, close_mosaic=close_mosaic, aug=AugmentConfig(mosaic=mosaic),
            loss=LossWeights(kpt=kpt_weight, kpt_l1=kpt_l1), val_max_images=val_images, seed=seed,
            max_steps_per_epoch=max_steps, stop_after=stop_after,
        )  # fmt: skip
    progress, callbacks = _progress_callbacks(opts.epochs)
    try:
        result = train_from_files(cfg, opts, data, val, out, resume=resume, init_from=init_from,
                                  callbacks=callbacks)  # fmt: skip
    finally:
        if progress.live.is_started:  # stopping a never-started display prints a stray blank line
            progress.stop()
    if not main_rank:
        return
    if opts.stop_after is not None and opts.stop_after < opts.epochs:
        console.print(f"stopped after epoch {opts.stop_after}; continue with --resume --out {out}",
                      soft_wrap=True, highlight=False)  # fmt: skip
        return
    from edgepose.train.state import BEST

    m = result.metrics
    ap = (
        f"OKS AP {points(m['ap'])} (AP50 {points(m['ap50'])}, COCO points)"
        if "ap" in m
        else "no validation set"
    )
    console.print(f"best epoch {result.best_epoch}: {ap}; {out / BEST}  ({result.wall_s:.0f} s)",
                  soft_wrap=True, highlight=False)  # fmt: skip
