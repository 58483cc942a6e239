"""The mixed-precision policy builder on a stand-in metric: budget and max-error targets, any metric."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from edgepose.quant.graph import Layer
from edgepose.quant.options import LayerPrecision, Progress
from edgepose.quant.search import count_by_budget, count_by_max_error, order_by_sensitivity, search_mixed_plan

LAYERS = [Layer(f"conv{i}", "Conv", f"w{i}", (f"x{i}",), 0) for i in range(6)]
SCORES = [0.2, 0.05, 0.5, 0.0, 0.3, 0.05]  # most sensitive: 2, 4, 0, then 1 and 5 tied, then 3


class AdditiveMetric:
    """A stand-in for a sensitivity measurement: the error of a set of 8-bit layers is the sum of their
    scores. Any class with these two methods plugs into the search (search.SensitivityMetric)."""

    def __init__(self) -> None:
        self.progress: list[tuple[str, int, int]] = []
        self.evaluated: list[list[int]] = []

    def rank(self, progress: Progress | None = None) -> list[float]:
        for i in range(len(SCORES)):
            if progress:
                progress("sensitivity", i + 1, len(SCORES))
        return list(SCORES)

    def error(self, eight_bit: Sequence[int]) -> float:
        self.evaluated.append(sorted(eight_bit))
        return sum(SCORES[i] for i in eight_bit)


def test_order_and_counts() -> None:
    assert order_by_sensitivity(SCORES) == [2, 4, 0, 1, 5, 3]  # ties keep graph order
    assert [count_by_budget(n, 0.3) for n in (0, 1, 3, 10, 60)] == [0, 1, 1, 3, 18]
    order = order_by_sensitivity(SCORES)
    total = sum(SCORES)  # 1.1 with nothing promoted
    assert count_by_max_error(order, lambda s: sum(SCORES[i] for i in s), total) == 0
    assert count_by_max_error(order, lambda s: sum(SCORES[i] for i in s), 0.35) == 2  # 1.1 - 0.5 - 0.3
    assert count_by_max_error(order, lambda s: sum(SCORES[i] for i in s), 0.0) == 5  # layer 3 scores 0


def test_budget_promotes_the_top_layers_in_graph_order() -> None:
    metric = AdditiveMetric()
    seen: list[tuple[str, int, int]] = []
    found = search_mixed_plan(
        LAYERS, metric, high=LayerPrecision.INT16, budget=0.5, progress=lambda *a: seen.append(a)
    )
    assert found.plan.default is LayerPrecision.INT8
    assert found.plan.high() == ["conv0", "conv2", "conv4"]  # top 3 of 6, listed in graph order
    assert found.plan.of("conv2") is LayerPrecision.INT16 and found.plan.of("conv1") is LayerPrecision.INT8
    assert found.scores == SCORES and found.order == [2, 4, 0, 1, 5, 3]
    assert seen[-1] == ("sensitivity", 6, 6) and metric.evaluated == []  # a budget needs no evaluation


def test_max_error_promotes_the_fewest_and_high_may_be_float() -> None:
    metric = AdditiveMetric()
    found = search_mixed_plan(LAYERS, metric, high=LayerPrecision.FLOAT, max_error=0.35)
    assert found.plan.high() == ["conv2", "conv4"]
    assert found.plan.of("conv4") is LayerPrecision.FLOAT
    assert len(metric.evaluated) <= 3  # a binary search over 7 possible counts


def test_exactly_one_target() -> None:
    with pytest.raises(ValueError, match="exactly one of budget and max_error"):
        search_mixed_plan(LAYERS, AdditiveMetric(), high=LayerPrecision.INT16)
    with pytest.raises(ValueError, match="exactly one of budget and max_error"):
        search_mixed_plan(LAYERS, AdditiveMetric(), high=LayerPrecision.INT16, budget=0.3, max_error=0.1)
