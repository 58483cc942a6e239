"""The head comparison of issue 19: edgepose-n (YOLO-Pose) vs erpose-n (ER-Pose), same data, options, seeds.

    .venv/bin/python scripts/compare_heads.py data DIR        # DIR/train (v1, seed 1), DIR/val (v2, seed 2)
    OMP_NUM_THREADS=1 .venv/bin/python scripts/compare_heads.py train edgepose-n DIR/train DIR/val RUN_A &
    OMP_NUM_THREADS=1 .venv/bin/python scripts/compare_heads.py train erpose-n   DIR/train DIR/val RUN_B &
    .venv/bin/python scripts/compare_heads.py latency A.onnx B.onnx [--threads 2 --runs 200]

`train` runs one model on one thread (start both at once so they share the machine equally): 256 px,
batch 32, 10 epochs of the 4,000-image train set (1,250 steps), SGD lr 0.02 with a 1-epoch warmup and a
cosine, no mosaic (the shipped model's recipe; its YOLO-Pose loss weights: OKS 1.0 + L1 0.5; ER-Pose
uses its own loss), seed 0, validation on the first 200 val images every 3 epochs and the best on all
500. The train set is generator version 1 (keypoints on every person: the generator knows them, and
both heads should learn small people's poses even though the benchmark does not score them); the val
set is version 2, COCO's protocol.

`latency` times float exports at the deployment (score 0.25) and the evaluation (score 0.001) settings,
each in one interleaved run of the models (edgepose.bench.latency), batch 1 on a synthetic val image.
Accuracy, int8/mixed ΔAP and deployment latency come from `edgepose bench RUN_A/best.pt RUN_B/best.pt
--data DIR/val --variants float,int8,mixed`; parameters and GMACs from scripts/count_macs.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

EPOCHS, IMG, BATCH, LR, SEED = 10, 256, 32, 0.02, 0
TRAIN_IMAGES, VAL_IMAGES = 4000, 500


def make_data(root: Path) -> None:
    from edgepose.data.synth import synthesize

    synthesize(root / "train", TRAIN_IMAGES, IMG, seed=1, version=1)
    synthesize(root / "val", VAL_IMAGES, IMG, seed=2, version=2)


def train_one(name: str, train: str, val: str, out: str, seed: int = SEED) -> None:
    import torch

    from edgepose.data.convert import read_dataset
    from edgepose.nn.config import HeadKind, resolve_config
    from edgepose.train.augment import AugmentConfig
    from edgepose.train.loop import TrainCallbacks, TrainOptions
    from edgepose.train.loop import train as run
    from edgepose.train.loss import LossWeights

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg = resolve_config(name)
    loss = LossWeights() if cfg.head is HeadKind.ERPOSE else LossWeights(kpt=1.0, kpt_l1=0.5)
    opts = TrainOptions(
        epochs=EPOCHS, batch=BATCH, img=IMG, workers=0, lr0=LR, warmup_epochs=1.0, close_mosaic=0,
        aug=AugmentConfig(mosaic=0.0), loss=loss, val_max_images=200, val_every=3, seed=seed,
    )  # fmt: skip
    t0 = time.time()

    def on_step(epoch: int, step: int, steps: int, losses: dict[str, float], ips: float) -> None:
        if step % 25 == 0:
            print(f"{time.time() - t0:7.0f}s epoch {epoch + 1} step {step}/{steps} {losses} {ips:.1f} img/s")

    def on_epoch(rec: dict) -> None:
        print("EPOCH", json.dumps(rec), flush=True)

    res = run(cfg, read_dataset(train), read_dataset(val), out, opts,
              callbacks=TrainCallbacks(on_step=on_step, on_epoch=on_epoch))  # fmt: skip
    print("FINAL", json.dumps({"best_epoch": res.best_epoch, "metrics": res.metrics, "wall_s": res.wall_s}))


def latency(models: list[str], threads: int, runs: int) -> None:
    from edgepose.bench.latency import measure_latencies
    from edgepose.data.synth import render_sample
    from edgepose.defaults import DEPLOY, EVAL
    from edgepose.runtime import PoseEstimator

    image = render_sample(2, 0, IMG).image  # (S, S, 3) BGR, a val-set scene
    ests = [PoseEstimator(m, threads=threads) for m in models]
    for label, conf in (("deployment", DEPLOY.conf), ("evaluation", EVAL.conf)):
        lats = measure_latencies(ests, image, runs=runs, warmup=10, conf=conf)
        base = lats[0].p50_ms
        for m, lat in zip(models, lats, strict=True):
            print(
                f"{label} (score {conf:g}): {m}: p50 {lat.p50_ms:.2f} ms, p90 {lat.p90_ms:.2f} ms, infer "
                f"{lat.inference_ms:.2f} ms, post {lat.postprocess_ms:.2f} ms, x{lat.p50_ms / base:.2f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("root", type=Path)
    t = sub.add_parser("train")
    t.add_argument("name")
    t.add_argument("train")
    t.add_argument("val")
    t.add_argument("out")
    t.add_argument(
        "--seed", type=int, default=SEED, help="init, data order and augmentation (0 and 1 reported)"
    )
    lat = sub.add_parser("latency")
    lat.add_argument("models", nargs="+")
    lat.add_argument("--threads", type=int, default=2)
    lat.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    if args.cmd == "data":
        make_data(args.root)
    elif args.cmd == "train":
        train_one(args.name, args.train, args.val, args.out, args.seed)
    else:
        latency(args.models, args.threads, args.runs)


if __name__ == "__main__":
    sys.exit(main())
