"""The optimizer and LR schedule of a run: parameter groups (no decay on BN and biases), SGD nesterov or
AdamW, cosine LR with the YOLOv5 warmup."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from edgepose.train.options import OptimizerKind, TrainOptions


def param_groups(model: nn.Module, wd: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only; BN weights and all biases are not decayed."""
    decay, no_decay, biases = [], [], []
    for mod in model.modules():
        for name, p in mod.named_parameters(recurse=False):
            if name == "bias":
                biases.append(p)
            elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
                no_decay.append(p)
            else:
                decay.append(p)
    return [
        {"params": no_decay, "weight_decay": 0.0, "kind": "bn"},
        {"params": decay, "weight_decay": wd, "kind": "weight"},
        {"params": biases, "weight_decay": 0.0, "kind": "bias"},
    ]


def cosine_lr(opts: TrainOptions, it: int, total: int) -> float:
    """LR at global step `it` of `total`: cosine from lr0 to lr0 * lrf."""
    frac = min(it / max(total, 1), 1.0)
    return opts.lr0 * (opts.lrf + (1 - opts.lrf) * 0.5 * (1 + math.cos(math.pi * frac)))


def set_lr(opt: torch.optim.Optimizer, opts: TrainOptions, it: int, total: int, warmup: int) -> float:
    lr = cosine_lr(opts, it, total)
    sgd = opts.optimizer is OptimizerKind.SGD
    for g in opt.param_groups:
        if it < warmup:
            # YOLOv5 warmup: biases come down from warmup_bias_lr (SGD only: far too high for Adam),
            # weights come up from 0.
            start = opts.warmup_bias_lr if g["kind"] == "bias" and sgd else 0.0
            g["lr"] = start + (lr - start) * it / warmup
            if sgd:
                g["momentum"] = opts.warmup_momentum + (opts.momentum - opts.warmup_momentum) * it / warmup
        else:
            g["lr"] = lr
            if sgd:
                g["momentum"] = opts.momentum
    return lr


def make_optimizer(model: nn.Module, opts: TrainOptions) -> torch.optim.Optimizer:
    groups = param_groups(model, opts.weight_decay)
    if opts.optimizer is OptimizerKind.ADAMW:
        return torch.optim.AdamW(groups, lr=opts.lr0, betas=(opts.momentum, 0.999))
    return torch.optim.SGD(groups, lr=opts.lr0, momentum=opts.momentum, nesterov=True)
