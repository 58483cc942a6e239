"""Parameters and GMACs of the network a model deploys (what `edgepose export` traces), per head.

    .venv/bin/python scripts/count_macs.py edgepose-n erpose-n [--img 256]   # registry names, YAMLs or .pt

MACs are counted with forward hooks on every Conv2d that runs: output elements x (input channels /
groups) x kernel area (BatchNorm is folded at export; activations, pooling and the decode tail are not
counted). Parameters are those of the modules that run at inference: for ER-Pose the one-to-many
confidence branch, which only training uses, is left out (the exported graph does not contain it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn


def _model(name: str) -> nn.Module:
    from edgepose.nn.checkpoint import load_checkpoint
    from edgepose.nn.config import resolve_config
    from edgepose.nn.model import build_model

    if Path(name).suffix == ".pt":
        return load_checkpoint(name).model
    return build_model(resolve_config(name)).eval()


def _deployed(model: nn.Module) -> nn.Module:
    """The module the exporter traces: ER-Pose's inference branches only, YOLO-Pose's whole network."""
    from edgepose.export.erpose_export import ERPoseNet
    from edgepose.nn.erpose import ERPoseModel
    from edgepose.spec import InputFormat

    return ERPoseNet(model, InputFormat.FLOAT) if isinstance(model, ERPoseModel) else model


def count(model: nn.Module, size: int) -> tuple[int, float]:
    """(parameters of the modules that ran, GMACs of one (1, 3, size, size) image)."""
    macs = 0
    ran: set[nn.Module] = set()

    def hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            macs += out[0].numel() * (m.in_channels // m.groups) * kh * kw
        ran.add(m)

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    with torch.no_grad():
        _deployed(model).eval()(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    params = sum(p.numel() for m in ran for p in m.parameters(recurse=False))
    return params, macs / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="registry names (edgepose-n), model YAMLs or checkpoints (.pt)")
    ap.add_argument("--img", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name in args.models:
        params, gmacs = count(_model(name), args.img)
        print(f"{name}: {params / 1e6:.3f} M parameters, {gmacs:.3f} GMACs at {args.img} px")


if __name__ == "__main__":
    main()
