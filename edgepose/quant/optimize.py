"""Better 8-bit without 16-bit layers: each optimization is tried, measured, and kept only if it helps.

Stages, in the order they act on the model (each its own module, all numpy + onnxruntime):
- equalize   cross-layer equalization of Conv -> ReLU -> Conv pairs (edgepose.quant.equalize), before
             calibration because it changes the activation ranges; measured on its own;
- ranges     Sigmoid/SiLU inputs clipped where they saturate (edgepose.quant.ranges);
- rounding   weights rounded to minimise each layer's output error (edgepose.quant.rounding);
- biascorr   per-channel bias correction of the quantized model's mean errors (edgepose.quant.biascorr).

"Measured" means fidelity to float (edgepose.quant.fidelity) of the real quantized model on the check
images after each stage, the stages applied one on top of the other; choose_prefix keeps the best
prefix of that path. An option forced on (True) is kept whatever it measures; forced off (False) is
not run; None (the default) is "auto".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# "Measures better" means a fidelity drop at least this much lower (relative): smaller differences are
# within what 16 images can tell apart (on the shipped edgepose-n, rounding fitted to exact inputs measured
# 2.8% better on the check images and 0.2 AP worse on 200 others).
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
        verdict = "kept" if self.kept else "dropped (not in the best measured prefix)"
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


def choose_prefix(drops: Sequence[float], forced: Sequence[bool]) -> int:
    """How many stages of a cumulative path to keep.

    `drops[k]` is the fidelity drop after the first k stages (drops[0]: none); `forced[k - 1]` says
    stage k was asked for explicitly. The stages interact - on YOLO11n-pose (calibrating on the last 64
    photos) tight ranges alone measured 4% better, then fitted rounding 11% and bias correction 25%
    more, while each alone on the plain model measured no better - so the whole path is measured and
    its best prefix kept: the shortest one within MIN_GAIN of the best, and not shorter than the last
    forced stage.
    """
    least = max((k + 1 for k, f in enumerate(forced) if f), default=0)
    best = min(drops[least:])
    return next(k for k in range(least, len(drops)) if not better(best, drops[k]))
