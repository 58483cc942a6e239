"""Session-scoped model fixtures shared by unit and e2e tests: tiny checkpoints of real registry models."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_MODEL = "edgepose-tiny"  # registry entry: the nano architecture at width 0.125, 128 px
TINY_SEED = 0


def _seeded_checkpoint(tmp_path_factory: pytest.TempPathFactory, config: str) -> Path:
    """A seeded, randomly initialised checkpoint of registry model `config`, written by `save_checkpoint`.

    Random init (not trained) keeps the session fast; BatchNorm running statistics are set from a few
    seeded batches so activations have realistic ranges for export, calibration and quantization tests.
    """
    import torch

    from edgepose.nn.checkpoint import save_checkpoint
    from edgepose.nn.config import resolve_config
    from edgepose.nn.model import build_model
    from edgepose.spec import PoseSpec

    cfg = resolve_config(config)
    torch.manual_seed(TINY_SEED)
    model = build_model(cfg)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 3, cfg.input_size, cfg.input_size))  # BN running stats only
    model.eval()
    spec = PoseSpec(name=cfg.name, input_size=(cfg.input_size, cfg.input_size), strides=cfg.strides)
    path = tmp_path_factory.mktemp(config.replace("-", "_") + "_ckpt") / f"{config}.pt"
    return save_checkpoint(path, model, spec, epoch=0, metrics={})


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`edgepose-tiny` (128 px, ReLU), seeded (_seeded_checkpoint)."""
    return _seeded_checkpoint(tmp_path_factory, TINY_MODEL)


@pytest.fixture(scope="session")
def tiny_erpose_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`erpose-tiny` (128 px, ReLU; issue 19's ER-Pose head), seeded like `tiny_checkpoint`."""
    return _seeded_checkpoint(tmp_path_factory, "erpose-tiny")
