"""Task-aware mixed precision: which layers to keep high, chosen on measured fidelity to float.

Policy (a policy builder: it returns the set of layers kept high; plan.py turns it into onnxruntime
arguments):
1. Order the layers by task sensitivity (taskprobe: fidelity drop with only that layer at 8 bits),
   or, with `latency_aware`, greedily by sensitivity per MAC the promotion newly takes off the fused
   int8 kernels (the layer itself and the int8 layers that must write its inputs at high precision).
2. Try plans made of the first k layers of that order - with a budget, k = the budget and a few
   smaller sizes; with `max_drop`, growing k until the measured drop is under it, then bisecting -
   and measure each plan as a whole: the real quantized model, on the probe images.
3. Return the best plan measured: with a budget, the lowest drop (a smaller plan wins ties and any
   plan that measured better than a larger one); with `max_drop`, the smallest plan meeting it, or
   the best one tried with a note when none does.

Costs are counted in multiply-accumulates from the float graph's shapes (onnx shape inference).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import shape_inference

from edgepose.onnxkit.graph import producers
from edgepose.quant.fidelity import Fidelity
from edgepose.quant.graph import LAYER_OPS, Layer, chain_tensors

SMALLER_TRIES = (1.0, 0.5, 0.25)  # plan sizes tried under a budget, as fractions of the budget's size


def layer_macs(model: onnx.ModelProto, layers: Sequence[Layer]) -> list[int]:
    """Multiply-accumulates of each layer for one image (0 where a shape is unknown)."""
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # onnx raises InferenceError and plain errors on exotic graphs: costs unknown
        inferred = model
    shapes: dict[str, list[int]] = {}
    for vi in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    out = []
    for la in layers:
        node, w = nodes.get(la.name), inits.get(la.weight, [])
        y = shapes.get(node.output[0], []) if node is not None else []
        if not y or not w or 0 in y:
            out.append(0)
            continue
        per_out = int(np.prod(w)) // max(1, w[0]) if la.op in ("Conv",) else 0
        if la.op == "Conv":
            out.append(int(np.prod(y[1:])) * per_out)  # (C_out x H x W) x (C_in/g x kh x kw)
        elif la.op == "ConvTranspose":
            out.append(int(np.prod(shapes.get(node.input[0], [0])[1:])) * int(np.prod(w[1:])))
        else:  # Gemm / MatMul: output elements x reduced dimension
            k = w[0] if la.axis == 1 else w[1]
            out.append(int(np.prod(y[1:])) * int(k))
    return out


def unfused_by(layers: Sequence[Layer], graph: onnx.GraphProto, tail: set[str]) -> list[set[int]]:
    """Per layer: the layers that leave the fused int8 kernels when it is promoted (itself, and the
    layers writing the tensors it reads, which then write them at 16 bits or in float)."""
    prod = producers(graph)
    index = {la.name: i for i, la in enumerate(layers)}
    out = []
    for i, la in enumerate(layers):
        hit = {i}
        for t in chain_tensors([la], graph, tail):
            p = prod.get(t)
            if p is not None and p.op_type in LAYER_OPS and p.name in index:
                hit.add(index[p.name])
        out.append(hit)
    return out


def order_layers(
    sensitivity: Sequence[float], macs: Sequence[int], unfused: Sequence[set[int]], latency_aware: bool
) -> list[int]:
    """Layer indices in the order they are promoted (most useful first; ties keep graph order)."""
    n = len(sensitivity)
    if not latency_aware:
        return sorted(range(n), key=lambda i: (-sensitivity[i], i))
    total = max(1, sum(macs))
    order: list[int] = []
    off: set[int] = set()
    left = [i for i in range(n) if sensitivity[i] > 0]
    while left:
        # 1e-4 of the MACs: a layer that costs nothing more is very good, not infinitely good
        best = min(
            left, key=lambda i: (-sensitivity[i] / (sum(macs[j] for j in unfused[i] - off) / total + 1e-4), i)
        )
        order.append(best)
        off |= unfused[best]
        left.remove(best)
    return order + sorted((i for i in range(n) if sensitivity[i] <= 0), key=lambda i: i)


@dataclass
class Trial:
    size: int
    predicted: float  # additive prediction from the per-layer sensitivities
    measured: Fidelity
    unfused_macs: float  # share of the network's MACs off the fused int8 kernels


@dataclass
class SearchResult:
    chosen: list[int]  # layer indices kept high, in promotion order
    trials: list[Trial] = field(default_factory=list)
    note: str = ""

    @property
    def best(self) -> Trial | None:
        return next((t for t in self.trials if t.size == len(self.chosen)), None)


def predict(drop_all8: float, sensitivity: Sequence[float], chosen: Sequence[int]) -> float:
    """Predicted drop of a plan: the all-8-bit drop less the promoted layers' share of all sensitivity."""
    total = sum(s for s in sensitivity if s > 0)
    if total <= 0:
        return drop_all8
    return drop_all8 * (1.0 - sum(max(0.0, sensitivity[i]) for i in chosen) / total)


def search(
    order: Sequence[int],
    sensitivity: Sequence[float],
    measure: Callable[[list[int]], Fidelity],
    *,
    all8: Fidelity,
    macs: Sequence[int],
    unfused: Sequence[set[int]],
    budget: float | None,
    max_drop: float | None,
    progress: Callable[[int, int], None] | None = None,
) -> SearchResult:
    """How many of `order` to promote (module docstring); `measure` builds and scores a plan.

    `all8` is the all-8-bit model's fidelity, the plan of size 0: a plan is only chosen over it if it
    measures better.
    """
    n = len(order)
    total = max(1, sum(macs))
    drop_all8 = all8.drop
    cache: dict[int, Trial] = {0: Trial(0, drop_all8, all8, 0.0)}

    def trial(k: int) -> Trial:
        if k not in cache:
            chosen = list(order[:k])
            off: set[int] = set().union(*(unfused[i] for i in chosen)) if chosen else set()
            cache[k] = Trial(
                k, predict(drop_all8, sensitivity, chosen), measure(chosen), sum(macs[j] for j in off) / total
            )
            if progress:
                progress(len(cache), len(cache) + 1)
        return cache[k]

    if max_drop is None:
        if budget is None:
            raise ValueError("budget or max_drop is required")
        k_max = max(1, math.floor(budget * n + 1e-9)) if n else 0
        sizes = sorted({max(1, round(f * k_max)) for f in SMALLER_TRIES} if k_max else set())
        tried = [cache[0]] + [trial(k) for k in sizes]
        best = min(tried, key=lambda t: (t.measured.drop, t.size))
        note = "" if best.size or not sizes else "no plan measured better than all 8-bit; kept all 8-bit"
        return SearchResult(list(order[: best.size]), sorted(cache.values(), key=lambda t: t.size), note)
    if drop_all8 <= max_drop:
        return SearchResult([], [cache[0]])
    lo, hi = 0, None  # lo: largest size known to fail; hi: smallest known to pass
    k = 1
    while k <= n:
        if trial(k).measured.drop <= max_drop:
            hi = k
            break
        lo = k
        k = n if k == n else min(n, 2 * k)
        if lo == n:
            break
    if hi is None:
        best = min(cache.values(), key=lambda t: (t.measured.drop, t.size))
        note = (
            f"no plan met --max-drop {max_drop:g} (best measured drop {best.measured.drop:.4f} with "
            f"{best.size} layers); raise --max-drop or use --bits 16"
        )
        return SearchResult(list(order[: best.size]), sorted(cache.values(), key=lambda t: t.size), note)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if trial(mid).measured.drop <= max_drop:
            hi = mid
        else:
            lo = mid
    return SearchResult(list(order[:hi]), sorted(cache.values(), key=lambda t: t.size))


def describe_trials(result: SearchResult) -> list[str]:
    return [
        f"{t.size} layers: predicted drop {t.predicted:.6f}, measured {t.measured.drop:.6f} "
        f"(mean OKS {t.measured.mean_oks:.4f}), {100 * t.unfused_macs:.0f}% of MACs off fused int8"
        for t in result.trials
    ]
