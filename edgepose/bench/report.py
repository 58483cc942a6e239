"""bench.json, bench.md and bench.png (AP against latency, one point per variant), each written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgepose import fsio
from edgepose.bench.latency import SWITCH_BLOCK
from edgepose.bench.result import COLUMNS, BenchResult
from edgepose.errors import OutputError

JSON_NAME, MD_NAME, PNG_NAME = "bench.json", "bench.md", "bench.png"


def settings_lines(result: BenchResult) -> list[str]:
    """The conditions of the measurement, one line each (printed under the table and in bench.md)."""
    s = result.settings
    ev, lat = s["eval_setting"], s["latency_setting"]
    return [
        "AP, AP50, AP75, AR in COCO points (x100); ΔAP = AP - the float row's AP of the same model (n/a "
        "without one); 16-bit % = share of weighted layers at 16 bits",
        f"accuracy: COCO OKS keypoint AP on {s['num_images']} images of {s['data']}, score >= {ev['conf']} "
        f"IoU {ev['iou']} max {ev['max_det']} detections (evaluation setting; checkpoints are exported "
        "with it baked in)",
        f"latency: batch 1, {s['threads']} thread(s), {s['warmup']} warm-up + {s['runs']} timed runs "
        f"per model, models interleaved (rounds of {SWITCH_BLOCK} timed calls each, rotating order), "
        f"at score {lat['conf']} IoU {lat['iou']} (deployment setting); "
        "p50/p90 of pre + infer + post; FPS = 1000 / p50",
        "fidelity (no labels needed): each model's people compared with its float model's on the same images "
        "(float detections with score >= 0.25, matched by OKS with the COCO sigmas): OKS→float = mean OKS "
        "(a lost person counts 0), Kept % = share found again (OKS >= 0.5, score >= 0.25), Score Δ = mean "
        "|score difference| of the matched people",
        "kernels: from onnxruntime's optimized graph — 'fused int8' ran integer kernels; 'emulated' ran "
        "dequantize + float kernels on quantized weights (16-bit QDQ on CPU: not a board figure); 'float' "
        "ran float kernels on float weights (float islands of a cpu-float mixed model); mixed/npu16 keeps "
        "16-bit islands (emulates a 16-bit NPU), mixed/cpu-float keeps float islands (for CPUs)",
        f"machine: {s['machine']}; onnxruntime {s['onnxruntime']}; edgepose {s['edgepose']}",
    ]


def to_markdown(result: BenchResult) -> str:
    header = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |" for r in result.rows]
    notes = [f"- {line}" for line in settings_lines(result)]
    warns = [f"- warning: {w}" for w in result.warnings]
    return "\n".join(["# edgepose bench", "", header, rule, *body, "", *notes, *warns]) + "\n"


def plot(result: BenchResult, path: Path) -> None:
    """AP (COCO points) against p50 latency, one labelled point per row."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and boards
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    try:
        for r in result.rows:
            name = f"{Path(r.label).name} {r.variant.value}"
            ax.scatter(r.p50_ms, 100 * r.ap, s=50, label=f"{name}: AP {100 * r.ap:.1f}, {r.p50_ms:.1f} ms")
            ax.annotate(r.variant.value, (r.p50_ms, 100 * r.ap), textcoords="offset points", xytext=(6, 4),
                        fontsize=8)  # fmt: skip
        ax.legend(fontsize=7, loc="best")
        ax.set_xlabel(f"p50 latency, ms (batch 1, {result.settings['threads']} threads)")
        ax.set_ylabel("COCO keypoint AP (points, x100)")
        ax.set_title("edgepose bench: accuracy vs latency")
        ax.grid(True, alpha=0.3)
        ax.margins(0.15)
        fig.tight_layout()
        with fsio.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def write_reports(result: BenchResult, out_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Write the three files into `out_dir` (created if its parent exists); returns kind -> path."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; pass a folder for bench.json, bench.md and bench.png")
    if not out.exists():
        fsio.check_parent(out)
        try:
            out.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot create --out {out} ({exc.strerror}); choose another --out") from exc
    paths = {"json": out / JSON_NAME, "md": out / MD_NAME, "png": out / PNG_NAME}
    result.outputs = {k: str(v) for k, v in paths.items()}
    fsio.write_text(paths["json"], json.dumps(result.to_dict(), indent=2) + "\n")
    fsio.write_text(paths["md"], to_markdown(result))
    plot(result, paths["png"])
    return result.outputs
