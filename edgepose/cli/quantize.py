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


# Options of `edgepose quantize` (typer reads the help, default and parser from each).
_ModelArg = Annotated[Path, typer.Argument(help="Float end-to-end ONNX written by `edgepose export`.")]
_CalibOpt = Annotated[
    Path, typer.Option("--calib", help="Folder of calibration images (or DIR/images); 32–500 images.")
]
_NumCalibOpt = Annotated[
    int | None, typer.Option("--num-calib", help="Images used, evenly spread (default: all, <= 500).")
]
_BitsOpt = Annotated[int | None, typer.Option("--bits", help="8 or 16: one precision for all.")]
_MixedOpt = Annotated[
    bool, typer.Option("--mixed", help="Keep the most 8-bit-sensitive layers at high precision.")
]
_BudgetOpt = Annotated[
    float | None,
    typer.Option("--budget", help=f"--mixed: fraction of layers kept high (default {MIXED_BUDGET})."),
]
_MaxDropOpt = Annotated[
    float | None,
    typer.Option(
        "--max-drop",
        help="--mixed: instead of --budget, the largest fidelity drop vs float (1 - mean OKS x score "
        "agreement with the float model's people), e.g. 0.01; the fewest layers meeting it.",
    ),
]
_HighPrecisionOpt = Annotated[
    HighPrecision,
    typer.Option(
        "--high-precision",
        help="--mixed flavour: int16 = 16-bit islands, for 16-bit NPUs (emulated on CPUs); float = float "
        "islands that stay float in onnxruntime, for CPUs.",
    ),
]
_LatencyAwareOpt = Annotated[
    bool,
    typer.Option(
        "--latency-aware",
        help="--mixed: prefer layers that take few MACs off the fused int8 kernels (their own and "
        "their int8 neighbours').",
    ),
]


def _measured(flag: str, what: str) -> typer.models.OptionInfo:
    """A --x/--no-x switch whose default (None) means: keep the optimization if it measures better."""
    return typer.Option(f"--{flag}/--no-{flag}", help=f"{what} Default: kept if it measures better.",
                        show_default=False)  # fmt: skip


_EqualizeOpt = Annotated[
    bool | None, _measured("equalize", "Cross-layer equalization of Conv-ReLU-Conv pairs.")
]
_TightRangesOpt = Annotated[
    bool | None, _measured("tight-ranges", "Clip Sigmoid/SiLU inputs where they saturate.")
]
_RoundingOpt = Annotated[
    bool | None,
    _measured("rounding", "Fit 8-bit weight rounding to calibration activations (AdaRound-style)."),
]
_BiasCorrectionOpt = Annotated[bool | None, _measured("bias-correction", "Per-channel bias correction.")]
_SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        help="Seed of the fitted rounding's sample of calibration patches: same seed, same bytes; other "
        "seeds show how much one run's sample moves the result.",
    ),
]
_MethodOpt = Annotated[
    CalibMethod,
    typer.Option("--method", metavar="<method>", help="Calibration method: minmax, percentile or entropy."),
]
_OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", help="Output model (default: the input's name with the precision, e.g. m.int8.onnx)."
    ),
]
_VerboseOpt = Annotated[
    bool, typer.Option("--verbose", help="--bits 8/16: also list every layer (--mixed always does).")
]


def _precision(bits: int | None, mixed: bool, budget: float | None, max_drop: float | None,
               latency_aware: bool) -> Precision:  # fmt: skip
    """The precision the options ask for, or a one-line ConfigError for a combination that means nothing."""
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
    return Precision.MIXED if mixed else (Precision.INT8 if bits == 8 else Precision.INT16)


@app.command()
@handle_errors
def quantize(
    model: _ModelArg,
    calib: _CalibOpt,
    num_calib: _NumCalibOpt = None,
    bits: _BitsOpt = None,
    mixed: _MixedOpt = False,
    budget: _BudgetOpt = None,
    max_drop: _MaxDropOpt = None,
    high_precision: _HighPrecisionOpt = HighPrecision.INT16,
    latency_aware: _LatencyAwareOpt = False,
    equalize: _EqualizeOpt = None,
    tight_ranges: _TightRangesOpt = None,
    rounding: _RoundingOpt = None,
    bias_correction: _BiasCorrectionOpt = None,
    method: _MethodOpt = CalibMethod.MINMAX,
    seed: _SeedOpt = 0,
    out: _OutOpt = None,
    force: ForceOpt = False,
    verbose: _VerboseOpt = False,
) -> None:
    """Quantize MODEL with onnxruntime (static QDQ, per-channel weights); the decode/NMS tail stays float."""
    from edgepose.fsio import check_new
    from edgepose.quant.optimize import Options
    from edgepose.quant.options import check_options, default_output, report_path
    from edgepose.quant.quantize import quantize_model

    precision = _precision(bits, mixed, budget, max_drop, latency_aware)
    check_options(precision, budget, max_drop, seed)
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
            budget=budget,
            max_drop=max_drop,
            high_precision=high_precision,
            method=method,
            progress=progress,
            options=Options(equalize, tight_ranges, rounding, bias_correction),
            latency_aware=latency_aware,
            seed=seed,
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
        out.print(_layer_table(report, out.width))
        out.print("drop: the layer's task sensitivity, the drop in fidelity to float (1 - mean OKS x score "
                  "agreement) with only that layer at 8 bits; rank 1 is promoted first", highlight=False,
                  soft_wrap=not out.is_terminal)  # fmt: skip
    else:
        ops = Counter(layer.op for layer in report.layers)
        out.print(
            f"{len(report.layers)} layers ({', '.join(f'{n} {op}' for op, n in ops.most_common())}), all at "
            f"{report.precision.value}; the decode/NMS tail stays float (--verbose lists every layer)",
            highlight=False, soft_wrap=not out.is_terminal,
        )  # fmt: skip
    for line in report.summary():
        out.print(line, highlight=False, soft_wrap=not out.is_terminal)


def _layer_table(report: QuantReport, width: int) -> Table:
    """One row per layer; the layer name is never cut (on a terminal narrower than the longest name, it
    folds onto the next line instead)."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"{Path(report.output).name}: per-layer precision", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=0, show_edge=False)  # fmt: skip
    longest = max((len(layer.name) for layer in report.layers), default=5)
    # whole names where the terminal allows (the optimizations column folds first), else folded, never cut
    table.add_column("layer", overflow="fold", min_width=min(longest, max(8, width - 31)))
    table.add_column("op", no_wrap=True)
    table.add_column("drop", justify="right", no_wrap=True)
    table.add_column("rank", justify="right", no_wrap=True)
    table.add_column("prec.", no_wrap=True)
    table.add_column("optimizations", overflow="fold", min_width=4)
    mixed = report.precision is Precision.MIXED
    for layer, row in zip(report.layers, report.rows(), strict=True):
        table.add_row(*row, style="bold" if mixed and layer.precision is not LayerPrecision.INT8 else None)
    return table
