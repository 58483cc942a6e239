"""real.md of scripts/bench_real.py: the per-fold tables, ΔAP intervals, and the folds pooled.

Split from bench_real.py (which splits, quantizes and benches) to keep each file short; scripts/ is
sys.path[0] when bench_real.py runs, so it imports this file by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgepose.bench.intervals import DeltaAP
from edgepose.data.coco_eval import points, signed_points
from edgepose.spec import Precision


def row_name(fold: dict, row: object) -> str:
    """A bench row's name in this report: its file's variant (and seed: `int8.seed1`), from run_fold."""
    return fold["names"][Path(row.model).name]  # type: ignore[attr-defined]


def _table(fold: dict) -> list[str]:
    from edgepose.bench.result import COLUMNS

    res = fold["bench"]

    keep = ["Model", "Variant", "AP", "AP50", "ΔAP", "OKS→float", "Kept %", "Score Δ", "p50 ms", "16-bit %",
            "Kernels"]  # fmt: skip
    idx = [COLUMNS.index(k) for k in keep]
    lines = [
        "| " + " | ".join(keep) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(keep))) + "|",
    ]
    rows = res.rows  # type: ignore[attr-defined]
    base = next((r.p50_ms for r in rows if r.variant.value == "int8"), None)
    for r in rows:
        cells = r.cells()
        lines.append("| " + " | ".join(cells[i] for i in idx) + " |")
    if base:
        lines.append("")
        lines.append(
            "p50 relative to int8 (same interleaved run): "
            + ", ".join(f"{row_name(fold, r)} {r.p50_ms / base:.2f}x" for r in rows)
        )
    return lines


FLOAT = Precision.FLOAT.value  # the Variant label of the float rows


def _interval(d: DeltaAP) -> str:
    return f"[{signed_points(d.low)}, {signed_points(d.high)}]"


def _evals(fold: dict) -> dict:
    """{variant: per-image results} of one fold's bench (float first, in the table's order)."""
    rows = fold["bench"].rows
    return {row_name(fold, r): r.image_evals for r in rows if r.image_evals is not None}


def intervals(evals: dict, resamples: int, seed: int) -> dict[str, DeltaAP]:
    """Each quantized variant's ΔAP against float with its paired bootstrap interval over the photos."""
    from edgepose.bench.intervals import bootstrap_delta_ap

    names = [n for n in evals if n != FLOAT]
    deltas = bootstrap_delta_ap(evals[FLOAT], [evals[n] for n in names], resamples=resamples, seed=seed)
    return dict(zip(names, deltas, strict=True))


def statistics(folds: list[dict], resamples: int, seed: int) -> dict:
    """Per fold, and with several folds pooled, ΔAP and its interval; "pooled" also keeps the pooled
    per-image results (the AP of each variant over every evaluated photo)."""
    from edgepose.bench.intervals import pool_folds

    per_fold = [intervals(_evals(f), resamples, seed) for f in folds]
    if len(folds) < 2:
        return {"folds": per_fold, "seed": seed}
    pooled = pool_folds([_evals(f) for f in folds])
    deltas = intervals(pooled, resamples, seed)
    return {"folds": per_fold, "seed": seed, "pooled": pooled, "pooled_deltas": deltas}


def _pooled_table(folds: list[dict], stats: dict) -> list[str]:
    pooled, deltas = stats["pooled"], stats["pooled_deltas"]
    base = pooled[FLOAT]
    ev1 = len(folds[0]["split"].evaluate)
    d0 = next(iter(deltas.values()))
    tail = 50 * (1 - d0.level)  # percent below the interval
    lines = [
        "## Pooled over both folds (each photo evaluated by the variant calibrated on the other half)",
        "",
        f"{len(base.per_image)} photos, {base.people} labelled people: fold 1's {ev1} evaluation photos and "
        f"the {len(base.per_image) - ev1} of fold 2's that fold 1 did not evaluate (photos in both folds' "
        "evaluation halves calibrated neither model; they count once, from fold 1).",
        "",
        f"| Variant | AP | ΔAP | {100 * d0.level:g}% interval of ΔAP | OKS→float (mean of folds) |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = [f["bench"].rows for f in folds]
    for i, r in enumerate(rows[0]):
        name = row_name(folds[0], r)
        o = [rr[i].fidelity_oks for rr in rows if rr[i].fidelity_oks is not None]
        d = deltas.get(name)
        cells = (name, points(pooled[name].ap()), signed_points(d.delta) if d else "0.0",
                 _interval(d) if d else "–", f"{sum(o) / len(o):.3f}" if o else "–")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Interval: paired bootstrap over photos - {d0.resamples} resamples of the {d0.images} photos with "
        f"replacement (seed {stats['seed']}), float and the variant scored on the same resample, each AP "
        "re-accumulated from COCOeval's per-photo OKS matching (pycocotools' accumulate; a photo drawn "
        f"twice counts twice), then the {tail:g}th and {100 - tail:g}th percentiles of the AP difference. "
        "It covers which photos were evaluated, not which ones calibrated.",
        "",
    ]
    return lines


def report(folds: list[dict], model: Path, data: Path, stats: dict) -> str:
    out = [f"# Real-model benchmark: {model.name} on {data.name}", ""]
    for k, f in enumerate(folds):
        s = f["split"]  # bench_real.Split
        out += [
            f"## Fold {k + 1}: calibrate on {len(s.calib)} photos ({s.calib[0]} … {s.calib[-1]} by file "
            f"name), evaluate on the other {len(s.evaluate)} ({s.people} labelled people)",
            "",
            *_table(f),
            "",
            "quantize time (s): " + ", ".join(f"{k2} {v:.0f}" for k2, v in f["seconds"].items()),
            _fold_intervals(stats["folds"][k]),
        ]
        for name, rep in f["reports"].items():
            for line in rep.summary():
                out.append(f"- {name}: {line}")
        out.append("")
    if len(folds) > 1:
        out.append("## Mean over folds (ΔAP and fidelity)")
        out.append("")
        rows = [f["bench"].rows for f in folds]
        for i, r in enumerate(rows[0]):
            d = [rr[i].delta_ap for rr in rows if rr[i].delta_ap is not None]
            o = [rr[i].fidelity_oks for rr in rows if rr[i].fidelity_oks is not None]
            out.append(
                f"- {row_name(folds[0], r)}: ΔAP {signed_points(sum(d) / len(d))}"
                + (f", OKS→float {sum(o) / len(o):.3f}" if o else "")
            )
        out += ["", *_pooled_table(folds, stats)]
    if folds[0].get("repeats", 1) > 1:
        out += _repeats_table(folds, stats)
    return "\n".join(out) + "\n"


def repeat_summary(folds: list[dict], stats: dict) -> dict[str, dict]:
    """Per variant quantized with several seeds: its rows' names, ΔAP of each (pooled over the folds when
    there are two, else the fold's) and each fold's OKS→float of each."""
    deltas = stats["pooled_deltas"] if "pooled_deltas" in stats else stats["folds"][0]
    out: dict[str, dict] = {}
    for name in deltas:
        variant = name.split(".seed")[0]
        e = out.setdefault(variant, {"names": [], "delta": [], "oks": [[] for _ in folds]})
        e["names"].append(name)
        e["delta"].append(deltas[name].delta)
        for k, f in enumerate(folds):
            oks = next(r.fidelity_oks for r in f["bench"].rows if row_name(f, r) == name)
            e["oks"][k].append(oks)
    return {v: e for v, e in out.items() if len(e["names"]) > 1}


def _spread(values: list[float], fmt: Callable[[float], str]) -> str:
    """Mean (lowest … highest)."""
    return f"{fmt(sum(values) / len(values))} ({fmt(min(values))} … {fmt(max(values))})"


def _repeats_table(folds: list[dict], stats: dict) -> list[str]:
    summary = repeat_summary(folds, stats)
    where = "pooled over both folds" if "pooled_deltas" in stats else "this fold"
    head = " | ".join(f"OKS→float fold {k + 1}" for k in range(len(folds)))
    lines = [
        "## Repeats: each seeded variant quantized with `--seed 0 … K-1`",
        "",
        f"Mean (lowest … highest) over the seeds; ΔAP {where}. The seed draws the fitted rounding's "
        "calibration patches; the photos and everything else stay the same, so the spread is what one "
        "quantize run's sample moves.",
        "",
        f"| Variant | runs | ΔAP | {head} |",
        "|---|---:|---:|" + "---:|" * len(folds),
    ]
    for v, e in summary.items():
        cells = [v, str(len(e["names"])), _spread(e["delta"], signed_points)]
        cells += [_spread(o, "{:.3f}".format) for o in e["oks"]]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _fold_intervals(deltas: dict[str, DeltaAP]) -> str:
    if not deltas:
        return "ΔAP 95% interval: n/a (no quantized variant with AP)"
    d0 = next(iter(deltas.values()))
    return (
        f"ΔAP {100 * d0.level:g}% interval (paired bootstrap over these {d0.images} photos, "
        f"{d0.resamples} resamples): "
        + ", ".join(f"{n} {signed_points(d.delta)} {_interval(d)}" for n, d in deltas.items())
    )
