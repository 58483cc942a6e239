"""`edgepose bench`: every precision variant against float — accuracy and latency side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgepose.cli import app
from edgepose.cli._common import console, err_console, handle_errors, warn


@app.command()
@handle_errors
def bench(
    models: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Checkpoints (.pt: exported + quantized into --variants, cached) and/or ONNX files "
            "(benchmarked as they are). Default: the shipped models/edgepose-n.pt.",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Val set: COCO keypoints JSON, or a folder with annotations.json. "
            "Default: a synthetic set (seed 2, 256 px) generated into the cache folder.",
        ),
    ] = None,
    variants: Annotated[
        str | None,
        typer.Option(
            "--variants", help="For checkpoints: any of float,int16,int8,mixed (default: all four)."
        ),
    ] = None,
    calib: Annotated[
        Path | None,
        typer.Option(
            "--calib", help="Calibration images for quantizing (default: the shipped calibration/)."
        ),
    ] = None,
    num_calib: Annotated[
        int | None, typer.Option("--num-calib", help="Calibration images to use (default: all, at most 500).")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", help="onnxruntime intra-op threads.")] = 2,
    runs: Annotated[int, typer.Option("--runs", help="Timed runs per model (after the warm-up runs).")] = 50,
    warmup: Annotated[
        int | None, typer.Option("--warmup", help="Untimed warm-up runs per model (default: 5).")
    ] = None,
    num_images: Annotated[
        int | None,
        typer.Option(
            "--num-images", help="Evaluate the first N val images (default: all; 200 for the synthetic set)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for bench.json, bench.md, bench.png.")] = Path(
        "bench_out"
    ),
    cache_dir: Annotated[
        Path,
        typer.Option("--cache-dir", help="Where exported/quantized variants are cached by content hash."),
    ] = Path(".bench_cache"),
) -> None:
    """Accuracy (COCO OKS AP) and latency of float, int16, int8 and mixed models, side by side."""
    from rich import box
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from edgepose.bench import defaults
    from edgepose.bench.accuracy import EVAL_CONF, EVAL_IOU, EVAL_MAX_DET
    from edgepose.bench.latency import DEPLOY_CONF
    from edgepose.bench.report import settings_lines
    from edgepose.bench.result import COLUMNS
    from edgepose.bench.run import check_options, run_bench
    from edgepose.bench.variants import ALL_VARIANTS, parse_variants

    chosen = parse_variants(variants) if variants is not None else ALL_VARIANTS
    warm = {} if warmup is None else {"warmup": warmup}  # None: the library's default
    check_options(threads=threads, runs=runs, num_images=num_images, num_calib=num_calib, **warm)
    paths = list(models) if models else [defaults.default_model()]
    if variants is not None and all(p.suffix.lower() == ".onnx" for p in paths):
        warn(
            "--variants applies to checkpoints; ONNX files are benchmarked as they are "
            "(their precision comes from their metadata)"
        )
    needs_calib = any(p.suffix.lower() != ".onnx" for p in paths) and any(v.value != "float" for v in chosen)
    calib_dir = calib if calib is not None else (defaults.default_calib() if needs_calib else None)

    columns = (TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        if data is None:
            n = num_images or defaults.DEFAULT_NUM_IMAGES
            data = defaults.default_val(cache_dir, n, lambda d, t: progress("synthesize val set", d, t))
        if any(p.suffix.lower() != ".onnx" for p in paths):
            bar.console.print(
                f"checkpoints are exported with the COCO evaluation thresholds (score {EVAL_CONF}, IoU "
                f"{EVAL_IOU}, max {EVAL_MAX_DET} detections); latency is timed at score {DEPLOY_CONF}",
                highlight=False,
                soft_wrap=True,
            )
        result = run_bench(
            paths, data, variants=chosen, calib=calib_dir, num_calib=num_calib, threads=threads, runs=runs,
            num_images=num_images, **warm, out_dir=out, cache_dir=cache_dir, progress=progress,
            warn=lambda m: bar.console.print(f"[yellow]warning:[/] {m}", highlight=False, soft_wrap=True),
        )  # fmt: skip

    table = Table(title="edgepose bench", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
    for i, col in enumerate(COLUMNS):
        table.add_column(col, justify="left" if i < 2 or col == "Kernels" else "right", no_wrap=True)
    for row in result.rows:
        table.add_row(*row.cells())
    # Piped output (logs, CI, README captures) gets the whole table on one line per row, not 80 columns.
    (console if console.is_terminal else Console(width=260)).print(table)
    for line in settings_lines(result):
        console.print(line, highlight=False, soft_wrap=True)
    if result.reused:
        console.print(f"reused {len(result.reused)} cached model(s) from {cache_dir}", highlight=False)
    console.print(
        f"wrote {', '.join(result.outputs.values())} in {result.settings['seconds']} s",
        highlight=False,
        soft_wrap=True,
    )
