"""`edgepose quantize`: post-training quantization of an end-to-end export (8-bit, 16-bit, mixed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgepose.cli._app import app
from edgepose.cli._common import ForceOpt, console, handle_errors, stage_bars
from edgepose.defaults import MIXED_BUDGET
from edgepose.errors import ConfigError
from edgepose.quant.options import CalibMethod, HighPrecision, LayerPrecision
from edgepose.spec import Precision

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from edgepose.quant.report import QuantReport


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
        float | None,
        typer.Option("--budget", help=f"--mixed: fraction of layers kept high (default {MIXED_BUDGET})."),
    ] = None,
    max_drop: Annotated[
        float | None,
        typer.Option("--max-drop", help="--mixed: max raw-output NMSE vs float, e.g. 0.01."),
    ] = None,
    high_precision: Annotated[
        HighPrecision,
        typer.Option("--high-precision", help="--mixed: int16 (NPU-like) or float (fastest on CPUs)."),
    ] = HighPrecision.INT16,
    method: Annotated[CalibMethod, typer.Option("--method", help="Calibration method.")] = CalibMethod.MINMAX,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output model (default: MODEL.<precision>.onnx).")
    ] = None,
    force: ForceOpt = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="--bits 8/16: also list every layer (--mixed always does).")
    ] = False,
) -> None:
    """Quantize MODEL with onnxruntime (static QDQ, per-channel weights); the decode/NMS tail stays float."""
    from edgepose.fsio import check_new
    from edgepose.quant.quantize import check_options, default_output, quantize_model, report_path

    if mixed == (bits is not None):
        raise ConfigError("choose exactly one of --bits 8, --bits 16 or --mixed")
    if bits is not None and bits not in (8, 16):
        raise ConfigError(f"--bits {bits} is not supported; use --bits 8 or --bits 16 (or --mixed)")
    if not mixed and (budget is not None or max_drop is not None):
        raise ConfigError("--budget and --max-drop apply to --mixed only; add --mixed or drop them")
    if budget is not None and max_drop is not None:
        raise ConfigError("give --budget or --max-drop, not both")
    precision = Precision.MIXED if mixed else (Precision.INT8 if bits == 8 else Precision.INT16)
    check_options(precision, budget, max_drop)
    out = out if out is not None else default_output(model, precision)
    for path in (out, report_path(out)):  # the model and its report beside it
        check_new(path, force=force)

    with stage_bars(12, transient=True) as (_, progress):
        report = quantize_model(
            model,
            calib,
            out,
            precision=precision,
            num_calib=num_calib,
            budget=MIXED_BUDGET if budget is None else budget,
            max_drop=max_drop,
            high_precision=high_precision,
            method=method,
            progress=progress,
        )

    print_report(report, console, verbose=verbose)
    console.print(f"wrote {report.output} and {report_path(report.output)}", highlight=False, soft_wrap=True)


def print_report(report: QuantReport, out: Console, *, verbose: bool = False) -> None:
    """Per-layer precision (--mixed, or any precision with `verbose`: the layers kept high in bold), then
    the totals. With one precision for all (--bits) and no `verbose`, a line per op type stands for the
    table, whose rows would all say the same."""
    from collections import Counter

    mixed = report.precision is Precision.MIXED
    if mixed or verbose:
        out.print(_layer_table(report))
        out.print("NMSE: raw-output error vs float with only that layer at 8 bits (its sensitivity); SQNR = "
                  "-10 log10(NMSE) dB", highlight=False, soft_wrap=not out.is_terminal)  # fmt: skip
    else:
        ops = Counter(layer.op for layer in report.layers)
        out.print(
            f"{len(report.layers)} layers ({', '.join(f'{n} {op}' for op, n in ops.most_common())}), all at "
            f"{report.precision.value}; the decode/NMS tail stays float (--verbose lists every layer)",
            highlight=False, soft_wrap=not out.is_terminal,
        )  # fmt: skip
    for line in report.summary():
        out.print(line, highlight=False, soft_wrap=not out.is_terminal)


def _layer_table(report: QuantReport) -> Table:
    """One row per layer; the layer name is never cut (on a terminal narrower than the longest name, it
    folds onto the next line instead)."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"{Path(report.output).name}: per-layer precision", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=0, show_edge=False)  # fmt: skip
    table.add_column("layer", overflow="fold")
    table.add_column("op", no_wrap=True)
    table.add_column("NMSE", justify="right", no_wrap=True)
    table.add_column("SQNR", justify="right", no_wrap=True)
    table.add_column("precision", no_wrap=True)
    mixed = report.precision is Precision.MIXED
    for layer, row in zip(report.layers, report.rows(), strict=True):
        table.add_row(*row, style="bold" if mixed and layer.precision is not LayerPrecision.INT8 else None)
    return table
