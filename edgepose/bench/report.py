"""bench.json, bench.md and bench.png (AP, or OKS to float without labels, against latency, one point per
variant), each written atomically."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from edgepose import fsio
from edgepose.bench.latency import SWITCH_BLOCK
from edgepose.bench.result import COLUMNS, BenchResult, BenchRow
from edgepose.errors import OutputError
from edgepose.quant.fidelity import DEFAULT_REF_CONF, RECOVER_OKS
from edgepose.spec import Precision

if TYPE_CHECKING:
    from matplotlib.figure import Figure

JSON_NAME, MD_NAME, PNG_NAME = "bench.json", "bench.md", "bench.png"


def settings_lines(result: BenchResult) -> list[str]:
    """The conditions of the measurement, one line each (printed under the table and in bench.md)."""
    s = result.settings
    lat = s["latency_setting"]
    return [
        "AP, AP50, AP75, AR in COCO points (x100); ΔAP = AP - the AP of the float row named in ΔAP vs: the "
        "float model this file is or was quantized from, by file content (n/a when it is not benchmarked); "
        "16-bit % = share of weighted layers at 16 bits; mixed-npu16 / mixed-cpu: what --mixed kept its "
        "sensitive layers at",
        _accuracy_line(s),
        _letterbox_line(result),
        f"latency: batch 1, {s['threads']} thread(s), {s['warmup']} warm-up + {s['runs']} timed runs "
        f"per model, models interleaved (rounds of {SWITCH_BLOCK} timed calls each, rotating order), "
        f"at score {lat['conf']} IoU {lat['iou']} (deployment setting); "
        "p50/p90 of pre + infer + post; FPS = 1000 / p50",
        "fidelity (no labels needed): each model's people compared with its float model's on the same "
        f"images (float detections with score >= {DEFAULT_REF_CONF}, matched by OKS with the COCO "
        "sigmas): OKS→float = mean OKS (a lost person counts 0), Kept % = share found again "
        f"(OKS >= {RECOVER_OKS}, score >= {DEFAULT_REF_CONF}), Score Δ = mean |score difference| of the "
        "matched people",
        "kernels: from onnxruntime's optimized graph — 'fused int8' ran integer kernels; 'emulated' ran "
        "dequantize + float kernels on quantized weights (16-bit QDQ on CPU: not a board figure); 'float' "
        "ran float kernels on float weights (float islands of a mixed-cpu model); mixed-npu16 keeps "
        "16-bit islands (emulates a 16-bit NPU), mixed-cpu keeps float islands (for CPUs)",
        f"machine: {s['machine']}; onnxruntime {s['onnxruntime']}; edgepose {s['edgepose']}",
    ]


def _accuracy_line(s: dict) -> str:
    ev = s["eval_setting"]
    setting = (f"score >= {ev['conf']} IoU {ev['iou']} max {ev['max_det']} detections (evaluation setting; "
               "checkpoints are exported with it baked in)")  # fmt: skip
    if not s.get("labelled", True):
        return (
            f"accuracy: {s['data']} has no annotations: AP, AP50, AP75, AR and ΔAP are n/a; every model ran "
            f"on its {s['num_images']} images at {setting}, so fidelity to float and latency are measured "
            "(compare the variants by OKS→float)"
        )
    return f"accuracy: COCO OKS keypoint AP on {s['num_images']} images of {s['data']}, {setting}"


def _letterbox_line(result: BenchResult) -> str:
    """Said once, as information: images of any size are letterboxed into each model's input (mixed sizes
    are normal on real sets such as COCO), so accuracy is measured at the model's input size."""
    sizes: dict[str, int] = result.settings.get("val_image_sizes", {})  # type: ignore[assignment]
    inputs = sorted({f"{r.input_size[0]}x{r.input_size[1]}" for r in result.rows})
    common = next(iter(sizes), "?")
    shown = f"{common}" if len(sizes) <= 1 else f"{len(sizes)} sizes, {common} the most common"
    return (
        f"letterbox: the val images ({shown}) are scaled into the model input ({', '.join(inputs)}) with "
        "their aspect ratio kept, as the runtime does: accuracy is measured at the model's input size"
    )


def to_markdown(result: BenchResult) -> str:
    header = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |" for r in result.rows]
    notes = [f"- {line}" for line in settings_lines(result)]
    warns = [f"- warning: {w}" for w in result.warnings]
    return "\n".join(["# edgepose bench", "", header, rule, *body, "", *notes, *warns]) + "\n"


def ap_axis(aps_points: list[float]) -> tuple[float, float]:
    """The AP axis (COCO points): from 0 to the next multiple of 10 at least 5 points above the best AP,
    so differences of a few tenths (noise at these AP levels) look as small as they are."""
    top = max(aps_points, default=0.0) + 5.0
    return 0.0, float(min(100, max(10, math.ceil(top / 10) * 10)))


def _model_of(r: BenchRow) -> str:
    """The model a row belongs to in the plot: the float row it is compared with, else its own label."""
    return r.delta_ap_vs or r.label


def _plotted(result: BenchResult) -> tuple[dict[int, float], str, str]:
    """(row index -> y, axis label, what the dashed line is): AP in COCO points, or, on an unlabelled val set,
    OKS to the float model (1.0 for the float row itself; rows without a float model are left out)."""
    if result.settings.get("labelled", True):
        ys = {i: 100 * r.ap for i, r in enumerate(result.rows) if r.ap is not None}
        return ys, "COCO keypoint AP (points, x100)", "its float AP"
    ys = {}
    for i, r in enumerate(result.rows):
        if r.variant is Precision.FLOAT and r.delta_ap_vs == r.label:
            ys[i] = 1.0
        elif r.fidelity_oks is not None:
            ys[i] = r.fidelity_oks
    return ys, "OKS to the float model's people (no labels)", "float = 1"


def figure(result: BenchResult) -> Figure:
    """AP (COCO points; OKS to float on an unlabelled val set) against p50 latency: one colour and legend
    entry per model, each point labelled with its variant, and a dashed line at each model's float value
    (the ΔAP reference)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and boards
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ys, ylabel, dashed = _plotted(result)
    rows = [(result.rows[i], y) for i, y in ys.items()]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    models = list(dict.fromkeys(_model_of(r) for r, _ in rows))
    colour = {m: f"C{i % 10}" for i, m in enumerate(models)}
    for r, y in rows:
        c = colour[_model_of(r)]
        if r.variant is Precision.FLOAT and r.delta_ap_vs == r.label:
            ax.axhline(y, color=c, linestyle="--", linewidth=0.8, alpha=0.6)
        ax.scatter(r.p50_ms, y, s=50, color=c)
        ax.annotate(r.variant_label or r.variant.value, (r.p50_ms, y), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)  # fmt: skip
    handles = [Line2D([], [], color=colour[m], marker="o", linestyle="", label=m) for m in models]
    ax.legend(handles=handles, fontsize=7, loc="lower right", title=f"model (dashed: {dashed})",
              title_fontsize=7)  # fmt: skip
    if result.settings.get("labelled", True):
        ax.set_ylim(*ap_axis(list(ys.values())))
    else:  # OKS to float: down to a little below the worst variant, never zoomed into noise
        ax.set_ylim(min(0.8, min(ys.values(), default=1.0) - 0.05), 1.02)
    ax.set_xlim(0, 1.2 * max((r.p50_ms for r in result.rows), default=1.0))  # room for the labels
    ax.set_xlabel(f"p50 latency, ms (batch 1, {result.settings['threads']} threads)")
    ax.set_ylabel(ylabel)
    ax.set_title("edgepose bench: accuracy vs latency")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def plot(result: BenchResult, path: Path) -> None:
    """`figure(result)` as a PNG, written atomically."""
    import matplotlib.pyplot as plt

    fig = figure(result)
    try:
        with fsio.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def report_paths(out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """kind -> path of the three reports in `out_dir`."""
    out = Path(out_dir)
    return {"json": out / JSON_NAME, "md": out / MD_NAME, "png": out / PNG_NAME}


def write_reports(result: BenchResult, out_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Write the three files into `out_dir` (made with its missing parents); returns kind -> path."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; pass a folder for bench.json, bench.md and bench.png")
    paths = report_paths(out)
    result.outputs = {k: str(v) for k, v in paths.items()}
    fsio.write_text(paths["json"], json.dumps(result.to_dict(), indent=2) + "\n")
    fsio.write_text(paths["md"], to_markdown(result))
    plot(result, paths["png"])
    return result.outputs
