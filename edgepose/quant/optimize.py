"""Better 8-bit without 16-bit layers: each optimization is tried, measured, and kept only if it helps.

Stages, in the order they act on the model (each its own module, all numpy + onnxruntime):
- equalize   cross-layer equalization of Conv -> ReLU -> Conv pairs (edgepose.quant.equalize), before
             calibration because it changes the activation ranges;
- ranges     Sigmoid/SiLU inputs clipped where they saturate (edgepose.quant.ranges);
- rounding   weights rounded to minimise each layer's output error (edgepose.quant.rounding);
- biascorr   per-channel bias correction of the quantized model's mean errors (edgepose.quant.biascorr).

"Measured" means fidelity to float (edgepose.quant.fidelity) of the real quantized model on the check
images, before and after the stage: a stage that does not lower the fidelity drop by MIN_GAIN is
dropped again and the report says so. An option forced on (True) is kept whatever it measures;
forced off (False) is not run; None (the default) is "auto".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edgepose.quant.fidelity import Fidelity

# The stages, in order; the CLI and the report spell them this way.
STAGES = ("equalize", "ranges", "rounding", "biascorr")
# "Measures better" means a fidelity drop at least this much lower (relative): smaller differences are
# within what 16 images can tell apart (on the shipped edgepose-n, fitted rounding measured 2.8% better
# on the check images and 0.2 AP worse on 200 others).
MIN_GAIN = 0.05


def better(after: float, before: float) -> bool:
    """Whether a drop of `after` is a real improvement on `before`."""
    return after < before * (1.0 - MIN_GAIN)


@dataclass(frozen=True)
class Options:
    """Per stage: None = try and keep if it measures better, True = always, False = never."""

    equalize: bool | None = None
    ranges: bool | None = None
    rounding: bool | None = None
    biascorr: bool | None = None

    def wanted(self, stage: str) -> bool | None:
        return getattr(self, stage)


@dataclass
class StepRecord:
    """What one stage did: fidelity drop before and after, kept or not, time, and a detail line."""

    stage: str
    kept: bool
    drop_before: float | None
    drop_after: float | None
    seconds: float
    detail: str = ""
    layers: list[str] = field(default_factory=list)  # the layers the stage changed

    def describe(self) -> str:
        if self.drop_before is None or self.drop_after is None:
            return f"{self.stage}: {self.detail} ({self.seconds:.1f} s)"
        verdict = "kept" if self.kept else "dropped (measured no better)"
        return (
            f"{self.stage}: fidelity drop {self.drop_before:.4f} -> {self.drop_after:.4f}, {verdict}"
            + (f"; {self.detail}" if self.detail else "")
            + f" ({self.seconds:.1f} s)"
        )


@dataclass
class OptimizationLog:
    steps: list[StepRecord] = field(default_factory=list)

    def kept(self) -> list[str]:
        return [s.stage for s in self.steps if s.kept]

    def per_layer(self) -> dict[str, list[str]]:
        """layer -> the kept stages that changed it, in stage order."""
        out: dict[str, list[str]] = {}
        for s in self.steps:
            if s.kept:
                for name in s.layers:
                    out.setdefault(name, []).append(s.stage)
        return out

    def to_dict(self) -> list[dict[str, object]]:
        return [
            {
                "stage": s.stage,
                "kept": s.kept,
                "drop_before": None if s.drop_before is None else round(s.drop_before, 6),
                "drop_after": None if s.drop_after is None else round(s.drop_after, 6),
                "seconds": round(s.seconds, 2),
                "detail": s.detail,
            }
            for s in self.steps
        ]


def try_stage(
    log: OptimizationLog,
    stage: str,
    wanted: bool | None,
    current: tuple[object, Fidelity],
    apply: Callable[[], tuple[object, str, list[str]]],
    measure: Callable[[object], Fidelity],
) -> tuple[object, Fidelity]:
    """Run one stage on `current` (state, fidelity); keep the result if wanted or if it measures better."""
    if wanted is False:
        return current
    t = time.perf_counter()
    state, before = current
    new_state, detail, layers = apply()
    after = measure(new_state)
    keep = wanted is True or better(after.drop, before.drop)
    log.steps.append(
        StepRecord(stage, keep, before.drop, after.drop, time.perf_counter() - t, detail, layers)
    )
    return (new_state, after) if keep else (state, before)
