"""Latency at batch 1, one model or several side by side: warm-up, then timed calls; percentiles, FPS and
the stage split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgepose.bench.progress import StageProgress
from edgepose.defaults import BENCH_RUNS, BENCH_WARMUP
from edgepose.errors import ConfigError
from edgepose.runtime.estimator import PoseEstimator

SWITCH_BLOCK = 5  # timed calls per model per round when several models are timed side by side


@dataclass(frozen=True)
class Latency:
    """Milliseconds per image (preprocess + inference + postprocess) over `runs` timed calls."""

    p50_ms: float
    p90_ms: float
    preprocess_ms: float  # medians of each stage
    inference_ms: float
    postprocess_ms: float
    runs: int
    warmup: int

    @property
    def fps(self) -> float:
        """Frames per second at the median latency: 1000 / p50."""
        return 1000.0 / self.p50_ms


def measure_latency(
    estimator: PoseEstimator,
    image: np.ndarray,
    *,
    runs: int = BENCH_RUNS,
    warmup: int = BENCH_WARMUP,  # first calls pay for memory planning and caches; never timed
    conf: float | None = None,
    iou: float | None = None,
) -> Latency:
    """Time `runs` calls of `estimator` on `image` after `warmup` untimed ones (the runtime's own Timings)."""
    return measure_latencies([estimator], image, runs=runs, warmup=warmup, conf=conf, iou=iou)[0]


def measure_latencies(
    estimators: Sequence[PoseEstimator],
    image: np.ndarray,
    *,
    runs: int = BENCH_RUNS,
    warmup: int = BENCH_WARMUP,
    conf: float | None = None,
    iou: float | None = None,
    progress: StageProgress | None = None,
) -> list[Latency]:
    """Time several models side by side: `warmup` untimed calls each, then rounds in which every model,
    in an order rotating from round to round, gets one untimed switch-in call and a block of up to
    SWITCH_BLOCK timed calls, until each has `runs`. Background load and clock changes hit all models
    alike, so their ratios hold on a shared machine (timed one after another, the int8/float ratio of
    the same two files drifted from 1.14x to 0.97x between two runs here). The switch-in call absorbs
    the previous model's onnxruntime threads still spinning on the same cores."""
    if runs < 1:
        raise ConfigError(f"--runs must be >= 1, got {runs}; use e.g. --runs {BENCH_RUNS}")
    if warmup < 0:
        raise ConfigError(f"warm-up runs must be >= 0, got {warmup}")
    for est in estimators:
        for _ in range(warmup):
            est(image, conf=conf, iou=iou)
    n = len(estimators)
    stages = np.empty((n, runs, 3), np.float64)  # (models, runs, pre/infer/post)
    done = 0  # timed calls per model so far
    rnd = 0
    while done < runs:
        block = min(SWITCH_BLOCK, runs - done)
        for k in range(n):
            m = (rnd + k) % n  # rotate who goes first
            if n > 1:
                estimators[m](image, conf=conf, iou=iou)  # switch-in, untimed
            for j in range(block):
                t = estimators[m](image, conf=conf, iou=iou).timings
                assert t is not None  # the estimator always records timings (internal invariant)
                stages[m, done + j] = (t.preprocess_ms, t.inference_ms, t.postprocess_ms)
        done += block
        rnd += 1
        if progress:
            progress(done, runs)
    out = []
    for st in stages:
        total = st.sum(axis=1)  # (runs,)
        p50, p90 = np.percentile(total, [50, 90])
        pre, infer, post = np.median(st, axis=0)
        out.append(Latency(float(p50), float(p90), float(pre), float(infer), float(post), runs, warmup))
    return out
