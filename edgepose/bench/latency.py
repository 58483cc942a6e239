"""Latency of one model at batch 1: warm-up, then timed calls; percentiles, FPS and the stage split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgepose.errors import ConfigError
from edgepose.runtime.estimator import PoseEstimator

DEFAULT_RUNS = 50
DEFAULT_WARMUP = 5  # first calls pay for memory planning and caches; never timed
# Latency is timed at the deployment setting (what a board runs), fed at run time where the graph allows.
DEPLOY_CONF, DEPLOY_IOU = 0.25, 0.45


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
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
    conf: float | None = None,
    iou: float | None = None,
) -> Latency:
    """Time `runs` calls of `estimator` on `image` after `warmup` untimed ones (the runtime's own Timings)."""
    if runs < 1:
        raise ConfigError(f"--runs must be >= 1, got {runs}; use e.g. --runs 50")
    if warmup < 0:
        raise ConfigError(f"warm-up runs must be >= 0, got {warmup}")
    for _ in range(warmup):
        estimator(image, conf=conf, iou=iou)
    stages = np.empty((runs, 3), np.float64)  # (runs, pre/infer/post)
    for i in range(runs):
        t = estimator(image, conf=conf, iou=iou).timings
        assert t is not None  # the estimator always records timings (internal invariant, not user input)
        stages[i] = (t.preprocess_ms, t.inference_ms, t.postprocess_ms)
    total = stages.sum(axis=1)  # (runs,)
    p50, p90 = np.percentile(total, [50, 90])
    pre, infer, post = np.median(stages, axis=0)
    return Latency(float(p50), float(p90), float(pre), float(infer), float(post), runs, warmup)
