"""The training loop: SGD (nesterov) + cosine LR with warmup, EMA weights, AMP on CUDA, per-epoch OKS AP,
atomic best/last checkpoints, metrics.jsonl, --resume, --init-from; single process or DDP (torchrun)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from edgepose.data.coco_eval import AP_SCALE, AP_SCALE_KEY
from edgepose.data.types import PoseDataset
from edgepose.fsio import write_text
from edgepose.nn.checkpoint import load_checkpoint, save_checkpoint
from edgepose.nn.config import ModelConfig
from edgepose.nn.model import PoseModel, build_model
from edgepose.spec import PoseSpec, flip_index_for
from edgepose.train import ddp
from edgepose.train.criterion import make_criterion
from edgepose.train.ema import ModelEMA, unwrap
from edgepose.train.evaluate import evaluate_model
from edgepose.train.optim import make_optimizer, set_lr
from edgepose.train.options import (
    TrainCallbacks,
    TrainOptions,
    check_options,
    check_people,
    options_to_dict,
)
from edgepose.train.state import (
    BEST,
    LAST,
    METRICS,
    RESULTS,
    init_weights_from,
    restore_state,
    training_state,
    write_history,
)

__all__ = ["TrainCallbacks", "TrainOptions", "TrainResult", "train"]  # what callers import from here


@dataclass
class TrainResult:
    out_dir: Path
    best_epoch: int
    metrics: dict[str, float]  # of best.pt, on the whole val set
    history: list[dict[str, Any]]
    wall_s: float
    model: PoseModel  # the trained (not averaged) weights of this rank, unwrapped from DDP


def _spec_for(cfg: ModelConfig, data: PoseDataset, img: int) -> PoseSpec:
    return PoseSpec(
        name=cfg.name,
        input_size=(img, img),
        strides=tuple(cfg.strides),
        keypoint_names=tuple(data.keypoint_names),
        skeleton=tuple(data.skeleton),
        flip_index=flip_index_for(data.keypoint_names),
    )


def _loader(ds: Any, opts: TrainOptions, epoch: int, info: ddp.DistInfo) -> torch.utils.data.DataLoader:
    """A fresh loader per epoch, so workers see this epoch's `ds.epoch` / `ds.use_mosaic`."""
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

    from edgepose.train.dataset import collate

    if info.distributed:
        sampler: Any = DistributedSampler(ds, info.world_size, info.rank, shuffle=True, seed=opts.seed)
        sampler.set_epoch(epoch)
    else:
        g = torch.Generator().manual_seed(opts.seed * 1000 + epoch)  # same order after --resume
        sampler = RandomSampler(ds, generator=g)
    return DataLoader(
        ds,
        batch_size=opts.batch,
        sampler=sampler,
        num_workers=opts.workers,
        collate_fn=collate,
        pin_memory=info.device.type == "cuda",
        drop_last=False,
    )


@dataclass
class _Run:
    """What every epoch reads and updates: the run's objects, its schedule and its best-so-far."""

    opts: TrainOptions
    info: ddp.DistInfo
    out: Path
    spec: PoseSpec
    model: torch.nn.Module  # wrapped in DistributedDataParallel under torchrun
    ema: ModelEMA
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: torch.nn.Module
    loss_names: tuple[str, ...]
    ds: Any  # PoseTrainDataset
    val_data: PoseDataset | None
    cb: TrainCallbacks
    steps: int  # per epoch
    warmup: int  # warmup steps
    start_epoch: int = 0
    best_fit: float = -1.0
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def amp(self) -> bool:
        return self.info.device.type == "cuda"


def _start(
    cfg: ModelConfig,
    train_data: PoseDataset,
    val_data: PoseDataset | None,
    out: Path,
    opts: TrainOptions,
    info: ddp.DistInfo,
    *,
    resume: bool,
    init_from: str | Path | None,
    cb: TrainCallbacks,
) -> _Run:
    """Model (fresh, --init-from or --resume), EMA, optimizer, loss, dataset and the step schedule."""
    from edgepose.train.dataset import PoseTrainDataset

    torch.manual_seed(opts.seed)
    model = build_model(cfg)
    if init_from is not None and not resume:
        init_weights_from(model, init_from)
        # The 0.1 bias warmup is for freshly initialised detection biases; on trained weights it is
        # a shock (edgepose-n: val AP 0.147 -> 0.045 after one warmup epoch at lr 0.01), so a
        # fine-tune warms its biases up from 0 like every other weight.
        opts = replace(opts, warmup_bias_lr=0.0)
    # channels_last: oneDNN's NHWC convolutions train edgepose-n 1.32x faster than NCHW on a 2-core
    # x86 CPU (scripts/bench_train_step.py, batch 32 at 256 px); cuDNN prefers NHWC under AMP too.
    model.to(info.device, memory_format=torch.channels_last)
    spec = _spec_for(cfg, train_data, opts.img)
    ema = ModelEMA(model)
    optimizer = make_optimizer(model, opts)
    restored = restore_state(out, info.device, model, ema, optimizer) if resume else (0, -1.0, 0, [])
    wrapped: torch.nn.Module = model
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [info.device.index] if info.device.type == "cuda" else None
        wrapped = DistributedDataParallel(model, device_ids=ids)
    criterion, loss_names = make_criterion(cfg, model, spec.sigmas, opts.loss)
    criterion.to(info.device)
    ds = PoseTrainDataset(train_data, opts.img, spec.flip_index, opts.aug, seed=opts.seed)
    scaler = torch.amp.GradScaler("cuda", enabled=info.device.type == "cuda")
    steps = len(_loader(ds, opts, 0, info))
    if opts.max_steps_per_epoch:
        steps = min(steps, opts.max_steps_per_epoch)
    warmup = min(round(opts.warmup_epochs * steps), steps * opts.epochs // 2)
    return _Run(opts, info, out, spec, wrapped, ema, optimizer, scaler, criterion, loss_names, ds, val_data,
                cb, steps, warmup, *restored)  # fmt: skip


def _run_epoch(run: _Run, epoch: int, te: float) -> dict[str, Any]:
    """One pass of `run.steps` optimizer steps (the epoch began at `te`); its record: LR, mosaic, mean
    losses, speed."""
    opts, info, ds = run.opts, run.info, run.ds
    ds.epoch = epoch
    ds.use_mosaic = opts.aug.mosaic > 0 and epoch < opts.epochs - opts.close_mosaic
    run.model.train()
    sums = torch.zeros(len(run.loss_names))
    seen, n_steps, t_step = 0, 0, time.time()
    lr = opts.lr0
    for i, (imgs, targets) in enumerate(_loader(ds, opts, epoch, info)):
        if i >= run.steps:
            break
        lr = set_lr(run.optimizer, opts, epoch * run.steps + i, run.steps * opts.epochs, run.warmup)
        x = imgs.to(info.device, non_blocking=True).float() / 255.0  # (B, 3, S, S)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", enabled=run.amp):
            preds = run.model(x)
        loss, parts = run.criterion(preds, targets)
        if info.distributed:
            loss = loss * info.world_size  # DDP averages gradients over ranks
        # No gradient clipping: the first steps' norm (~1e3, the class prior being learnt) would
        # be clipped ~100x and stall every other term for hundreds of steps.
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.optimizer.zero_grad(set_to_none=True)
        run.ema.update(run.model)
        sums += parts.cpu()
        seen += x.shape[0]
        n_steps += 1
        if info.is_main and run.cb.on_step:
            mean = dict(zip(run.loss_names, (sums / n_steps).tolist(), strict=True))
            run.cb.on_step(epoch, i + 1, run.steps, mean, seen * info.world_size / (time.time() - t_step))
    record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "mosaic": ds.use_mosaic}
    record.update(
        {f"loss_{k}": v for k, v in zip(run.loss_names, (sums / max(n_steps, 1)).tolist(), strict=True)}
    )
    record["train_img_per_s"] = seen * info.world_size / max(time.time() - te, 1e-9)
    return record


def _end_of_epoch(run: _Run, epoch: int, record: dict[str, Any], te: float) -> None:
    """Rank 0: validate (every val_every epochs and after the last), save best.pt and last.pt, log."""
    opts, out, val_data = run.opts, run.out, run.val_data
    metrics: dict[str, float] = {}
    validate = (epoch + 1) % opts.val_every == 0 or epoch + 1 == opts.epochs
    if val_data is not None and validate:
        metrics = evaluate_model(run.ema.ema, val_data, opts.img, batch=opts.val_batch,
                                 max_images=opts.val_max_images)  # fmt: skip
    record.update({f"val_{k}": v for k, v in metrics.items()})
    record["epoch_s"] = time.time() - te
    # No val set: the latest is the best; epochs skipped by val_every are not candidates.
    fit = metrics["ap"] if metrics else float(epoch)
    if (val_data is None or validate) and fit >= run.best_fit:
        run.best_fit, run.best_epoch = fit, epoch + 1
        save_checkpoint(out / BEST, run.ema.ema, run.spec, epoch=epoch + 1, metrics=metrics)
    state = training_state(run.model, run.ema, run.optimizer, opts, run.best_fit, run.best_epoch)
    save_checkpoint(out / LAST, run.ema.ema, run.spec, epoch=epoch + 1, metrics=metrics, train_state=state)
    run.history.append(record)
    write_history(out / METRICS, run.history)
    if run.cb.on_epoch:
        run.cb.on_epoch(record)


def _finalize(run: _Run, t0: float) -> dict[str, float]:
    """Rank 0, after the last epoch: best.pt's metrics on the whole val set (re-evaluated when epochs
    validated on a part of it), and results.json."""
    opts, out, val_data = run.opts, run.out, run.val_data
    best = load_checkpoint(out / BEST, map_location=str(run.info.device))
    final = dict(best.metrics)
    if val_data is not None and opts.val_max_images is not None and opts.val_max_images < len(val_data):
        final = evaluate_model(best.model, val_data, opts.img, batch=opts.val_batch)
        save_checkpoint(out / BEST, best.model, best.spec, epoch=best.epoch, metrics=final)
    results = {"best_epoch": run.best_epoch, "epochs": opts.epochs, "metrics": final, AP_SCALE_KEY: AP_SCALE,
               "val_images": len(val_data) if val_data is not None else 0,
               "wall_s": time.time() - t0, "options": options_to_dict(opts)}  # fmt: skip
    write_text(out / RESULTS, json.dumps(results, indent=2) + "\n")
    if run.cb.on_final:
        run.cb.on_final(results)
    return final


def train(
    cfg: ModelConfig,
    train_data: PoseDataset,
    val_data: PoseDataset | None,
    out_dir: str | Path,
    opts: TrainOptions,
    *,
    resume: bool = False,
    init_from: str | Path | None = None,
    callbacks: TrainCallbacks | None = None,
) -> TrainResult:
    """Train `cfg` on `train_data`; writes out_dir/{last.pt, best.pt, metrics.jsonl, results.json}.

    `resume` continues from out_dir/last.pt (model, EMA, optimizer, epoch; same LR schedule).
    Under torchrun every rank calls this; rank 0 validates and writes.
    """
    cb = callbacks or TrainCallbacks()
    check_options(cfg, opts)
    check_people(train_data, "training data", cfg)
    t0 = time.time()
    out = Path(out_dir)
    info = ddp.setup(opts.device)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    try:
        run = _start(cfg, train_data, val_data, out, opts, info, resume=resume, init_from=init_from, cb=cb)
        opts = run.opts
        if info.is_main and cb.on_start:
            facts = {"steps_per_epoch": run.steps, "images": len(run.ds), "device": str(info.device)}
            facts.update(world_size=info.world_size, start_epoch=run.start_epoch, epochs=opts.epochs)
            cb.on_start(facts)
        last_epoch = min(opts.epochs, opts.stop_after or opts.epochs)
        for epoch in range(run.start_epoch, last_epoch):
            te = time.time()
            record = _run_epoch(run, epoch, te)
            if info.is_main:
                _end_of_epoch(run, epoch, record, te)
            ddp.barrier(info)
        final: dict[str, float] = {}
        if info.is_main and last_epoch == opts.epochs:  # not for a run stopped early (--stop-after)
            final = _finalize(run, t0)
        ddp.barrier(info)
        return TrainResult(out, run.best_epoch, final, run.history, time.time() - t0, unwrap(run.model))  # type: ignore[arg-type]
    finally:
        ddp.cleanup(info)
