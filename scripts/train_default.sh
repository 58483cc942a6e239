#!/usr/bin/env bash
# Trains the shipped default model models/edgepose-n.pt (see models/README.md): edgepose-n, ReLU, 256x256,
# on the synthetic train set (seed 1, 10000 images), validated on data/val (seed 2, 500 images). The shipped
# model's own sets came from a pre-release generator, so a rerun trains on equivalent, not identical, data
# (models/README.md, Provenance).
#
# CPU recipe for a 2-core machine shared with other jobs (10-19 img/s): "epochs" of 100 steps x 32 images,
# 20 of them = 64,000 images seen (~6 passes over the set). Versus the paper's recipe, for this short
# schedule: base LR 0.02 (not 0.01), no mosaic (too few passes to overfit), OKS keypoint loss weight 1.0
# (paper 0.1) plus an L1 keypoint term (--kpt-l1 0.5: 1 - OKS gives no gradient to keypoints far from
# their target, i.e. all of them at the start). Per-epoch AP on the first 200 val images; at the end the
# best checkpoint is re-evaluated on all 500 (results.json).
#
# The run was planned as 10 epochs and extended (to 12 after epoch 3, to 15 after epoch 5, then a
# warm-restart tail to 20 after the 15-epoch run had finished) as the shared machine turned out faster
# than budgeted; a second session continued it with a warm restart to 65 epochs (epoch 21 ran on a
# 55-epoch curve before the total was raised to 65); a third session fine-tuned that model on a fresh
# cosine (stage 7). The stages below reproduce exactly that LR schedule
# (--resume keeps the options and continues on the cosine curve of the new total). Stages 1-4 ran
# before training switched to channels_last (same maths, 1.32x faster on this CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d data/train ] || [ ! -d data/val ]; then
  mkdir -p data
  .venv/bin/python -c "from edgepose.data.synth import synthesize; synthesize('data/train', 10000, 256, seed=1); synthesize('data/val', 500, 256, seed=2)"
fi
mkdir -p runs
# PASSIVE: idle OpenMP threads sleep instead of spinning; on a shared 2-core machine spinning threads
# waiting for a descheduled peer cut throughput by ~3x (measured).
export OMP_WAIT_POLICY=PASSIVE
# stage 1: epochs 1-3 of a 10-epoch schedule
.venv/bin/python -m edgepose train --config edgepose-n --data data/train --val data/val \
  --epochs 10 --max-steps 100 --img 256 --batch 32 --workers 1 --mosaic 0 --lr 0.02 --warmup-epochs 0.5 \
  --kpt-weight 1.0 --kpt-l1 0.5 --val-images 200 --seed 0 --out runs/default --stop-after 3
# stage 2: epochs 4-5, the schedule stretched to 12 epochs
.venv/bin/python -m edgepose train --resume --data data/train --val data/val --epochs 12 --workers 1 \
  --out runs/default --stop-after 5
# stage 3: epochs 6-15, stretched to 15 (a complete run: its best was AP 0.056 on all 500 val images)
.venv/bin/python -m edgepose train --resume --data data/train --val data/val --epochs 15 --workers 1 \
  --out runs/default
# stage 4: epochs 16-20 on a curve stretched to 20 (LR back up to ~0.003, then down again); the best
# epoch is re-evaluated on all 500 val images (runs/default/results.json)
.venv/bin/python -m edgepose train --resume --data data/train --val data/val --epochs 20 --workers 1 \
  --out runs/default
# stage 5 (second session): epoch 21 on a curve stretched to 55 (warm restart: LR 0.0002 -> 0.014)
.venv/bin/python -m edgepose train --resume --data data/train --val data/val --epochs 55 --workers 1 \
  --out runs/default --stop-after 21
# stage 6: epochs 22-65 on a curve stretched to 65; the best epoch is re-evaluated on all 500 val images
.venv/bin/python -m edgepose train --resume --data data/train --val data/val --epochs 65 --workers 1 \
  --out runs/default
# stage 7 (third session): a fine-tune from stage 6's best on a fresh cosine (LR 0.008 -> 0, one warmup
# epoch in which biases warm up from 0 like the weights), new data order (seed 3); planned as 45 epochs,
# stretched to 50 after epoch 3, stopped after epoch 46 for time (best: epoch 42).
.venv/bin/python -m edgepose train --init-from runs/default/best.pt --data data/train --val data/val \
  --epochs 45 --max-steps 100 --img 256 --batch 32 --workers 1 --mosaic 0 --lr 0.008 --warmup-epochs 1 \
  --kpt-weight 1.0 --kpt-l1 0.5 --val-images 200 --seed 3 --out runs/default_ft --stop-after 3
.venv/bin/python -m edgepose train --resume --data data/train --val data/val --epochs 50 --workers 1 \
  --out runs/default_ft --stop-after 46
cp runs/default_ft/best.pt models/edgepose-n.pt
# the reported metrics: 500 val images of the committed generator, seed 2 (see models/README.md, Provenance)
if [ ! -d data/val_gen ]; then
  .venv/bin/python -c "from edgepose.data.synth import synthesize; synthesize('data/val_gen', 500, 256, seed=2)"
fi
.venv/bin/python -m edgepose val --weights models/edgepose-n.pt --data data/val_gen
