"""The training loop: SGD (nesterov) + cosine LR with warmup, EMA weights, AMP on CUDA, per-epoch OKS AP,
atomic best/last checkpoints, metrics.jsonl, --resume, --init-from; single process or DDP (torchrun)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from edgepose.data.types import PoseDataset
from edgepose.errors import ModelFileError
from edgepose.fsio import write_text
from edgepose.nn.checkpoint import load_checkpoint, save_checkpoint
from edgepose.nn.config import ModelConfig
from edgepose.nn.model import PoseModel, build_model
from edgepose.spec import PoseSpec, flip_index_for
from edgepose.train import ddp
from edgepose.train.criterion import make_criterion
from edgepose.train.ema import ModelEMA, unwrap
from edgepose.train.evaluate import evaluate_model
from edgepose.train.options import (
    OptimizerKind,
    TrainCallbacks,
    TrainOptions,
    check_options,
    check_people,
    make_optimizer,
    options_to_dict,
    set_lr,
)

__all__ = [
    "OptimizerKind",
    "TrainCallbacks",
    "TrainOptions",
    "TrainResult",
    "check_options",
    "check_people",
    "train",
]

BEST, LAST, METRICS, RESULTS = "best.pt", "last.pt", "metrics.jsonl", "results.json"


@dataclass
class TrainResult:
    out_dir: Path
    best_epoch: int
    metrics: dict[str, float]  # of best.pt, on the whole val set
    history: list[dict[str, Any]]
    wall_s: float
    model: PoseModel  # the trained (not averaged) weights of this rank, unwrapped from DDP


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


def _read_history(path: Path, upto: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if int(r.get("epoch", 0)) <= upto]


def _write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


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
    from edgepose.train.dataset import PoseTrainDataset

    cb = callbacks or TrainCallbacks()
    check_options(cfg, opts)
    check_people(train_data, "training data", cfg)
    t0 = time.time()
    out = Path(out_dir)
    info = ddp.setup(opts.device)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    try:
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
        start_epoch, best_fit, best_epoch = 0, -1.0, 0
        history: list[dict[str, Any]] = []
        if resume:
            ck = load_checkpoint(out / LAST, map_location=str(info.device))
            state = ck.train_state or {}
            if "model" not in state or "optimizer" not in state:
                raise ModelFileError(f"{out / LAST} has no training state; start a new run without --resume")
            model.load_state_dict(state["model"])
            ema.ema.load_state_dict(ck.model.state_dict())
            ema.updates = int(state.get("ema_updates", 0))
            optimizer.load_state_dict(state["optimizer"])
            start_epoch = ck.epoch
            best_fit, best_epoch = float(state.get("best_fitness", -1.0)), int(state.get("best_epoch", 0))
            history = _read_history(out / METRICS, start_epoch)
        if info.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [info.device.index] if info.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids)
        criterion, loss_names = make_criterion(cfg, unwrap(model), spec.sigmas, opts.loss)
        criterion.to(info.device)
        ds = PoseTrainDataset(train_data, opts.img, spec.flip_index, opts.aug, seed=opts.seed)
        amp = info.device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        steps = len(_loader(ds, opts, 0, info))
        if opts.max_steps_per_epoch:
            steps = min(steps, opts.max_steps_per_epoch)
        total = steps * opts.epochs
        warmup = min(round(opts.warmup_epochs * steps), total // 2)
        if info.is_main and cb.on_start:
            facts = {"steps_per_epoch": steps, "images": len(ds), "device": str(info.device)}
            facts.update(world_size=info.world_size, start_epoch=start_epoch, epochs=opts.epochs)
            cb.on_start(facts)
        last_epoch = min(opts.epochs, opts.stop_after or opts.epochs)
        for epoch in range(start_epoch, last_epoch):
            te = time.time()
            ds.epoch = epoch
            ds.use_mosaic = opts.aug.mosaic > 0 and epoch < opts.epochs - opts.close_mosaic
            model.train()
            sums = torch.zeros(len(loss_names))
            seen, n_steps, t_step = 0, 0, time.time()
            lr = opts.lr0
            for i, (imgs, targets) in enumerate(_loader(ds, opts, epoch, info)):
                if i >= steps:
                    break
                lr = set_lr(optimizer, opts, epoch * steps + i, total, warmup)
                x = imgs.to(info.device, non_blocking=True).float() / 255.0  # (B, 3, S, S)
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", enabled=amp):
                    preds = model(x)
                loss, parts = criterion(preds, targets)
                if info.distributed:
                    loss = loss * info.world_size  # DDP averages gradients over ranks
                # No gradient clipping: the first steps' norm (~1e3, the class prior being learnt) would
                # be clipped ~100x and stall every other term for hundreds of steps.
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                ema.update(model)
                sums += parts.cpu()
                seen += x.shape[0]
                n_steps += 1
                if info.is_main and cb.on_step:
                    mean = dict(zip(loss_names, (sums / n_steps).tolist(), strict=True))
                    cb.on_step(epoch, i + 1, steps, mean, seen * info.world_size / (time.time() - t_step))
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "mosaic": ds.use_mosaic}
            record.update(
                {f"loss_{k}": v for k, v in zip(loss_names, (sums / max(n_steps, 1)).tolist(), strict=True)}
            )
            record["train_img_per_s"] = seen * info.world_size / max(time.time() - te, 1e-9)
            if info.is_main:
                metrics: dict[str, float] = {}
                validate = (epoch + 1) % opts.val_every == 0 or epoch + 1 == opts.epochs
                if val_data is not None and validate:
                    metrics = evaluate_model(ema.ema, val_data, opts.img, batch=opts.val_batch,
                                             max_images=opts.val_max_images)  # fmt: skip
                record.update({f"val_{k}": v for k, v in metrics.items()})
                record["epoch_s"] = time.time() - te
                # No val set: the latest is the best; epochs skipped by val_every are not candidates.
                fit = metrics["ap"] if metrics else float(epoch)
                if (val_data is None or validate) and fit >= best_fit:
                    best_fit, best_epoch = fit, epoch + 1
                    save_checkpoint(out / BEST, ema.ema, spec, epoch=epoch + 1, metrics=metrics)
                state = {
                    "model": {
                        k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()
                    },
                    "optimizer": optimizer.state_dict(),
                    "ema_updates": ema.updates,
                    "best_fitness": best_fit,
                    "best_epoch": best_epoch,
                    "options": options_to_dict(opts),
                }
                save_checkpoint(
                    out / LAST, ema.ema, spec, epoch=epoch + 1, metrics=metrics, train_state=state
                )
                history.append(record)
                _write_history(out / METRICS, history)
                if cb.on_epoch:
                    cb.on_epoch(record)
            ddp.barrier(info)
        final: dict[str, float] = {}
        if info.is_main and last_epoch == opts.epochs:  # not for a run stopped early (--stop-after)
            best = load_checkpoint(out / BEST, map_location=str(info.device))
            final = dict(best.metrics)
            if (
                val_data is not None
                and opts.val_max_images is not None
                and opts.val_max_images < len(val_data)
            ):
                final = evaluate_model(best.model, val_data, opts.img, batch=opts.val_batch)
                save_checkpoint(out / BEST, best.model, best.spec, epoch=best.epoch, metrics=final)
            results = {"best_epoch": best_epoch, "epochs": opts.epochs, "metrics": final,
                       "val_images": len(val_data) if val_data is not None else 0,
                       "wall_s": time.time() - t0, "options": options_to_dict(opts)}  # fmt: skip
            write_text(out / RESULTS, json.dumps(results, indent=2) + "\n")
            if cb.on_final:
                cb.on_final(results)
        ddp.barrier(info)
        return TrainResult(out, best_epoch, final, history, time.time() - t0, unwrap(model))  # type: ignore[arg-type]
    finally:
        ddp.cleanup(info)
