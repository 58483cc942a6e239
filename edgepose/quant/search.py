"""The mixed-precision policy builder: which layers `--mixed` keeps at high precision.

Shaped like onnxruntime.quantization's policy builders: it walks the ranked layers and returns a
PrecisionPlan (per-layer overrides of the 8-bit default), and knows nothing of how the ranking was
measured. Anything that satisfies `SensitivityMetric` plugs in: today `sensitivity.SensitivityProbe`
(raw-output NMSE); a task-aware metric, or one measured after bias correction or AdaRound, is another
implementation of the same two methods. The high precision is any LayerPrecision (INT16, or FLOAT for
float islands).

Two targets:
- a budget: the top `floor(budget * n)` layers by score (at least one);
- a largest error: the fewest top-ranked layers whose promotion brings `metric.error` under it (a
  binary search, assuming the error does not grow as more layers are promoted).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from edgepose.quant.graph import Layer
from edgepose.quant.options import LayerPrecision, Progress
from edgepose.quant.plan import PrecisionPlan


class SensitivityMetric(Protocol):
    """How much 8-bit layers hurt; higher is worse. Indices are positions in the searched layer list."""

    def rank(self, progress: Progress | None = None) -> list[float]:
        """Per layer, the damage with that layer alone at 8 bits (0 for a layer that stays float)."""
        ...

    def error(self, eight_bit: Sequence[int]) -> float:
        """The damage with the layers at these indices at 8 bits and every other layer promoted."""
        ...


@dataclass(frozen=True)
class MixedSearch:
    """The plan and how it was chosen (the report shows the scores and ranks)."""

    plan: PrecisionPlan
    scores: list[float]  # the metric's per-layer score, graph order
    order: list[int]  # layer indices, most sensitive first


def order_by_sensitivity(scores: Sequence[float]) -> list[int]:
    """Layer indices, most sensitive first; ties keep graph order (deterministic)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def count_by_budget(num_layers: int, budget: float) -> int:
    """How many layers a budget (a fraction of the layers) promotes: at least one when there are any."""
    return max(1, math.floor(budget * num_layers + 1e-9)) if num_layers else 0


def count_by_max_error(
    order: Sequence[int], error: Callable[[Sequence[int]], float], max_error: float
) -> int:
    """The fewest of the most sensitive layers (`order`) to promote so that `error` <= `max_error`.

    error(order[k:]) is the error with the top-k promoted, assumed non-increasing in k; len(order) when
    even promoting all of them does not reach the limit.
    """
    lo, hi = 0, len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        if error(order[mid:]) <= max_error:
            hi = mid
        else:
            lo = mid + 1
    return lo


def search_mixed_plan(
    layers: Sequence[Layer],
    metric: SensitivityMetric,
    *,
    high: LayerPrecision,
    budget: float | None = None,
    max_error: float | None = None,
    progress: Progress | None = None,
) -> MixedSearch:
    """Rank `layers` with `metric` and promote the most sensitive to `high`, by budget or by max_error."""
    if (budget is None) == (max_error is None):
        raise ValueError("give exactly one of budget and max_error")
    scores = metric.rank(progress)
    order = order_by_sensitivity(scores)
    if max_error is not None:
        k = count_by_max_error(order, metric.error, max_error)
    else:
        assert budget is not None  # checked above: exactly one target
        k = count_by_budget(len(layers), budget)
    plan = PrecisionPlan(LayerPrecision.INT8, {layers[i].name: high for i in sorted(order[:k])})
    return MixedSearch(plan=plan, scores=scores, order=order)
