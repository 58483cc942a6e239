"""`edgepose bench`: every precision variant against float — accuracy and latency side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgepose.bench.cache import DEFAULT_CACHE_DIR
from edgepose.bench.defaults import DEFAULT_MODEL, DEFAULT_NUM_IMAGES, VAL_SEED, VAL_SIZE
from edgepose.bench.progress import for_stage
from edgepose.cli._app import app
from edgepose.cli._common import ForceOpt, console, handle_errors, stage_bars, warn
from edgepose.defaults import BENCH_RUNS, BENCH_THREADS, BENCH_WARMUP, DEPLOY, EVAL

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from edgepose.bench.result import BenchResult


# Options of `edgepose bench` (typer reads the help, default and parser from each).
_ModelsOpt = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Checkpoints (.pt: exported + quantized into --variants, cached) and/or ONNX files "
        f"(benchmarked as they are). Default: the shipped {DEFAULT_MODEL.as_posix()}.",
        show_default=False,
    ),
]
_DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Val set: COCO keypoints JSON, a folder with annotations.json, or a folder of unlabelled images "
        f"(no AP; fidelity to float and latency). Default: a synthetic set (seed {VAL_SEED}, {VAL_SIZE} px) "
        "generated into the cache folder.",
    ),
]
_VariantsOpt = Annotated[
    str | None,
    typer.Option("--variants", help="For checkpoints: any of float,int16,int8,mixed (default: all four)."),
]
_CalibOpt = Annotated[
    Path | None,
    typer.Option("--calib", help="Calibration images for quantizing (default: the shipped calibration/)."),
]
_NumCalibOpt = Annotated[
    int | None, typer.Option("--num-calib", help="Calibration images to use (default: all, at most 500).")
]
_ThreadsOpt = Annotated[int, typer.Option("--threads", help="onnxruntime intra-op threads.")]
_RunsOpt = Annotated[int, typer.Option("--runs", help="Timed runs per model (after the warm-up runs).")]
_WarmupOpt = Annotated[int, typer.Option("--warmup", help="Untimed warm-up runs per model.")]
_NumImagesOpt = Annotated[
    int | None,
    typer.Option(
        "--num-images",
        help=f"Evaluate the first N val images (default: all; {DEFAULT_NUM_IMAGES} for the synthetic set).",
    ),
]
_OutOpt = Annotated[Path, typer.Option("--out", help="Folder for bench.json, bench.md, bench.png.")]
_CacheDirOpt = Annotated[
    Path,
    typer.Option("--cache-dir", help="Where exported/quantized variants are cached by content hash."),
]


@app.command()
@handle_errors
def bench(
    models: _ModelsOpt = None,
    data: _DataOpt = None,
    variants: _VariantsOpt = None,
    calib: _CalibOpt = None,
    num_calib: _NumCalibOpt = None,
    threads: _ThreadsOpt = BENCH_THREADS,
    runs: _RunsOpt = BENCH_RUNS,
    warmup: _WarmupOpt = BENCH_WARMUP,
    num_images: _NumImagesOpt = None,
    out: _OutOpt = Path("bench_out"),
    cache_dir: _CacheDirOpt = DEFAULT_CACHE_DIR,
    force: ForceOpt = False,
) -> None:
    """Accuracy (COCO OKS AP) and latency of float, int16, int8 and mixed models, side by side."""
    from edgepose.bench import defaults
    from edgepose.bench.inputs import check_can_export, is_checkpoint, needs_calib
    from edgepose.bench.run import check_options, check_out, run_bench
    from edgepose.bench.variants import ALL_VARIANTS, parse_variants

    chosen = parse_variants(variants) if variants is not None else ALL_VARIANTS
    check_options(threads=threads, runs=runs, num_images=num_images, num_calib=num_calib, warmup=warmup)
    check_out(out, force=force)
    paths = list(models or []) or [defaults.default_model()]
    has_checkpoint = any(map(is_checkpoint, paths))
    if has_checkpoint:
        check_can_export()  # a base install (no torch) fails here: before calibration or the val set
    calib_dir = calib
    if calib_dir is None and needs_calib(has_checkpoint, chosen):
        calib_dir = defaults.default_calib()  # the shipped calibration images
    if variants is not None and not has_checkpoint:
        warn("--variants applies to checkpoints; ONNX files are benchmarked as they are "
             "(their precision comes from their metadata)")  # fmt: skip
    with stage_bars(34, transient=False) as (bar, progress):
        if data is None:
            n = num_images or defaults.DEFAULT_NUM_IMAGES
            data = defaults.default_val(cache_dir, n, for_stage(progress, "synthesize val set"))
        if has_checkpoint:
            bar.console.print(
                f"checkpoints are exported with the COCO evaluation thresholds (score {EVAL.conf}, IoU "
                f"{EVAL.iou}, max {EVAL.max_det} detections); latency is timed at score {DEPLOY.conf}",
                highlight=False, soft_wrap=True,
            )  # fmt: skip
        result = run_bench(
            paths, data, variants=chosen, calib=calib_dir, num_calib=num_calib, threads=threads, runs=runs,
            num_images=num_images, warmup=warmup, out_dir=out, cache_dir=cache_dir, progress=progress,
            warn=warn,  # err_console: the bars' console, so the line lands above them
        )  # fmt: skip
    _print_result(result, cache_dir)


# A narrow terminal still shows these; the other columns are given up in this order until the table fits
# (bench.md always has them all). Piped output (logs, CI, README captures) prints every column, full rows.
ALWAYS_SHOWN = ("Model", "Variant", "AP", "ΔAP", "p50 ms", "FPS")
DROPPED_FIRST = (
    "Kernels",
    "pre/infer/post ms",
    "p90 ms",
    "AP75",
    "16-bit %",
    "Size MB",
    "Score Δ",
    "AR",
    "Kept %",
    "AP50",
    "ΔAP vs",
    "OKS→float",
)


def _table(result: BenchResult, columns: Sequence[str]) -> Table:
    from rich import box
    from rich.table import Table

    from edgepose.bench.result import COLUMNS

    table = Table(title="edgepose bench", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0),
                  show_edge=False)  # fmt: skip
    for col in columns:
        left = col in ("Model", "Variant", "ΔAP vs", "Kernels")
        # Only the model name may wrap (a terminal too narrow for even the columns above): never an ellipsis.
        table.add_column(col, justify="left" if left else "right", no_wrap=col != "Model", overflow="fold")
    index = [COLUMNS.index(c) for c in columns]
    for row in result.rows:
        cells = row.cells()
        table.add_row(*(cells[i] for i in index))
    return table


def print_table(result: BenchResult, out: Console) -> list[str]:
    """The results table on `out`: every column on a file or pipe (as wide as the rows are), else the
    columns that fit the terminal (ALWAYS_SHOWN at least); returns the columns left out."""
    from rich.measure import Measurement

    from edgepose.bench.result import COLUMNS

    columns, dropped = list(COLUMNS), []

    def width(cols: Sequence[str]) -> int:
        return Measurement.get(out, out.options.update(max_width=10**6), _table(result, cols)).maximum

    if not out.is_terminal:  # the rows as wide as they are, whatever width the pipe claims
        from rich.console import Console

        Console(file=out.file, width=width(columns), color_system=None).print(_table(result, columns))
        return []
    for col in DROPPED_FIRST:
        if width(columns) <= out.width:
            break
        columns.remove(col)
        dropped.append(col)
    out.print(_table(result, columns))
    return dropped


def _print_result(result: BenchResult, cache_dir: Path) -> None:
    """The table, the measurement conditions and what was written."""
    from edgepose.bench.report import MD_NAME, settings_lines

    dropped = print_table(result, console)
    if dropped:
        console.print(
            f"not shown at {console.width} columns: {', '.join(dropped)}; {MD_NAME} has every column (so "
            "does the output piped to a file)",
            highlight=False, soft_wrap=not console.is_terminal,
        )  # fmt: skip
    for line in settings_lines(result):
        console.print(line, highlight=False, soft_wrap=not console.is_terminal)
    if result.reused:
        console.print(f"reused {len(result.reused)} cached model(s) from {cache_dir}", highlight=False)
    console.print(
        f"wrote {', '.join(result.outputs.values())} in {result.settings['seconds']} s",
        highlight=False,
        soft_wrap=True,
    )
