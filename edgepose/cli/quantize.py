"""`edgepose quantize`: post-training quantization of an end-to-end export (8-bit, 16-bit, mixed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgepose.cli import app
from edgepose.cli._common import console, err_console, handle_errors
from edgepose.errors import ConfigError
from edgepose.quant.options import CalibMethod, HighPrecision


@app.command()
@handle_errors
def quantize(
    model: Annotated[Path, typer.Argument(help="Float end-to-end ONNX written by `edgepose export`.")],
    calib: Annotated[
        Path, typer.Option("--calib", help="Folder of calibration images (or DIR/images); 32–500 images.")
    ],
    num_calib: Annotated[
        int | None, typer.Option("--num-calib", help="Images used, evenly spread (default: all, <= 500).")
    ] = None,
    bits: Annotated[int | None, typer.Option("--bits", help="8 or 16: one precision for all.")] = None,
    mixed: Annotated[
        bool, typer.Option("--mixed", help="Keep the most 8-bit-sensitive layers at high precision.")
    ] = False,
    budget: Annotated[
        float | None, typer.Option("--budget", help="--mixed: fraction of layers kept high (default 0.3).")
    ] = None,
    max_drop: Annotated[
        float | None,
        typer.Option(
            "--max-drop",
            help="--mixed: instead of --budget, the largest fidelity drop vs float (1 - mean OKS x score "
            "agreement with the float model's people), e.g. 0.01; the fewest layers meeting it.",
        ),
    ] = None,
    high_precision: Annotated[
        HighPrecision,
        typer.Option(
            "--high-precision",
            help="--mixed flavour: int16 = 16-bit islands, for 16-bit NPUs (emulated on CPUs); float = float "
            "islands that stay float in onnxruntime, for CPUs.",
        ),
    ] = HighPrecision.INT16,
    latency_aware: Annotated[
        bool,
        typer.Option(
            "--latency-aware",
            help="--mixed: prefer layers that take few MACs off the fused int8 kernels (their own and "
            "their int8 neighbours').",
        ),
    ] = False,
    equalize: Annotated[
        bool | None,
        typer.Option(
            "--equalize/--no-equalize",
            help="Cross-layer equalization of Conv-ReLU-Conv pairs. Default: kept if it measures better.",
            show_default=False,
        ),
    ] = None,
    tight_ranges: Annotated[
        bool | None,
        typer.Option(
            "--tight-ranges/--no-tight-ranges",
            help="Clip Sigmoid/SiLU inputs where they saturate. Default: kept if it measures better.",
            show_default=False,
        ),
    ] = None,
    rounding: Annotated[
        bool | None,
        typer.Option(
            "--rounding/--no-rounding",
            help="Fit 8-bit weight rounding to calibration activations "
            "(AdaRound-style). Default: kept if it measures better.",
            show_default=False,
        ),
    ] = None,
    bias_correction: Annotated[
        bool | None,
        typer.Option(
            "--bias-correction/--no-bias-correction",
            help="Per-channel bias correction. Default: kept if it measures better.",
            show_default=False,
        ),
    ] = None,
    method: Annotated[CalibMethod, typer.Option("--method", help="Calibration method.")] = CalibMethod.MINMAX,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output model (default: MODEL.<precision>.onnx).")
    ] = None,
) -> None:
    """Quantize MODEL with onnxruntime (static QDQ, per-channel weights); the decode/NMS tail stays float."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from edgepose.quant.optimize import Options
    from edgepose.quant.quantize import check_options, quantize_model, report_path
    from edgepose.spec import Precision

    if mixed == (bits is not None):
        raise ConfigError("choose exactly one of --bits 8, --bits 16 or --mixed")
    if bits is not None and bits not in (8, 16):
        raise ConfigError(f"--bits {bits} is not supported; use --bits 8 or --bits 16 (or --mixed)")
    if not mixed and (budget is not None or max_drop is not None):
        raise ConfigError("--budget and --max-drop apply to --mixed only; add --mixed or drop them")
    if budget is not None and max_drop is not None:
        raise ConfigError("give --budget or --max-drop, not both")
    if latency_aware and not mixed:
        raise ConfigError("--latency-aware applies to --mixed only; add --mixed or drop it")
    precision = Precision.MIXED if mixed else (Precision.INT8 if bits == 8 else Precision.INT16)
    check_options(precision, budget, max_drop)

    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = quantize_model(
            model,
            calib,
            out,
            precision=precision,
            num_calib=num_calib,
            budget=0.3 if budget is None else budget,
            max_drop=max_drop,
            high_precision=high_precision,
            method=method,
            progress=progress,
            options=Options(equalize, tight_ranges, rounding, bias_correction),
            latency_aware=latency_aware,
        )

    table = Table(title=f"{Path(report.output).name}: per-layer precision", title_justify="left")
    for col, just in (("layer", "left"), ("op", "left"), ("task sensitivity", "right"), ("rank", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    table.add_column("precision")
    table.add_column("optimizations")
    for row in report.rows():
        style = None if row[4] == "int8" or precision is not Precision.MIXED else "bold"
        table.add_row(*row, style=style)
    console.print(table)
    for line in report.summary():
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"wrote {report.output} and {report_path(report.output)}", highlight=False, soft_wrap=True)
