"""Per-call timings of the runtime, recorded on every result (the bench reads them)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Timings:
    """Wall-clock milliseconds of one estimator call; a batch call shares one Timings across its images."""

    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    batch_size: int = 1  # images processed by the call these figures belong to

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


class Stopwatch:
    """Laps in milliseconds: `lap()` returns the time since the previous lap (or creation)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        ms, self._last = (now - self._last) * 1000.0, now
        return ms


class FpsMeter:
    """Frames per second over the last `window` frames (a rolling mean, steadier than 1 / last frame)."""

    def __init__(self, window: int = 30) -> None:
        self._stamps: deque[float] = deque(maxlen=window + 1)
        self.frames = 0

    def tick(self) -> None:
        self._stamps.append(time.perf_counter())
        self.frames += 1

    @property
    def fps(self) -> float:
        """Rolling frame rate; 0.0 until two frames were seen."""
        if len(self._stamps) < 2:
            return 0.0
        span = self._stamps[-1] - self._stamps[0]
        return (len(self._stamps) - 1) / span if span > 0 else 0.0
