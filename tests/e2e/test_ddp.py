"""Two-process gloo DDP through `train()`: both ranks end with identical weights, rank 0 alone writes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(rank: int, world: int, port: int, data_dir: str, out: str, dump: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)
    from edgepose.data.convert import read_dataset
    from edgepose.nn.config import resolve_config
    from edgepose.train.loop import TrainOptions, train
    from edgepose.train.options import AugmentConfig

    opts = TrainOptions(epochs=1, batch=2, img=128, workers=0, max_steps_per_epoch=3, warmup_epochs=0.0,
                        aug=AugmentConfig(mosaic=0.5), seed=0)  # fmt: skip
    result = train(resolve_config("edgepose-tiny"), read_dataset(data_dir), None, out, opts)
    params = {k: v.detach().clone() for k, v in result.model.named_parameters()}
    torch.save(params, Path(dump) / f"rank{rank}.pt")


def test_two_rank_gloo_run_keeps_weights_identical(synth_dataset: Path, tmp_path: Path) -> None:
    from edgepose.nn.checkpoint import load_checkpoint
    from edgepose.nn.config import resolve_config
    from edgepose.nn.model import build_model

    out = tmp_path / "run"
    mp.spawn(
        _rank_main, args=(2, _free_port(), str(synth_dataset), str(out), str(tmp_path)), nprocs=2, join=True
    )
    p0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    p1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert p0.keys() == p1.keys()
    assert max((p0[k] - p1[k]).abs().max().item() for k in p0) == 0.0
    # The ranks trained (weights moved away from the seeded init) on different shards.
    torch.manual_seed(0)
    init = dict(build_model(resolve_config("edgepose-tiny")).named_parameters())
    assert max((p0[k] - init[k]).abs().max().item() for k in p0) > 1e-4
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl", "results.json"]
    assert load_checkpoint(out / "last.pt").epoch == 1
