"""The tables people read: bench results and the quantize per-layer report, at 80 and 120 columns, piped."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from edgepose.bench.kernels import KernelCounts
from edgepose.bench.result import COLUMNS, BenchResult, fill_delta_ap
from edgepose.cli.bench import ALWAYS_SHOWN, DROPPED_FIRST, print_table
from edgepose.spec import Precision
from tests.helpers.bench_rows import bench_row


def _console(width: int, terminal: bool) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None)


@pytest.fixture
def demo() -> BenchResult:
    """The make-demo table: four variants of edgepose-n, realistic widths."""
    variants = [
        (Precision.FLOAT, "float", 0.1421, KernelCounts(0, 0, 60), None),
        (Precision.INT16, "int16", 0.1419, KernelCounts(0, 60, 0), 100.0),
        (Precision.INT8, "int8", 0.1392, KernelCounts(57, 3, 0), 0.0),
        (Precision.MIXED, "mixed-npu16", 0.1424, KernelCounts(28, 32, 0), 30.0),
    ]
    rows = [
        bench_row(
            "edgepose-n",
            p,
            ap,
            "sha",
            variant_label=label,
            kernels=k,
            layers_16bit_pct=pct,
            p50_ms=13.13,
            p90_ms=21.22,
            fps=76.2,
            preprocess_ms=1.2,
            inference_ms=11.3,
            postprocess_ms=0.3,
            size_bytes=7_710_000,
        )
        for p, label, ap, k, pct in variants
    ]
    fill_delta_ap(rows)
    return BenchResult(rows, {"threads": 2})


def test_every_column_is_either_always_shown_or_in_the_drop_order() -> None:
    assert sorted(ALWAYS_SHOWN + DROPPED_FIRST) == sorted(COLUMNS)
    assert not set(ALWAYS_SHOWN) & set(DROPPED_FIRST)


@pytest.mark.parametrize("width", [80, 120])
def test_a_terminal_shows_whole_cells_that_fit_and_says_what_it_left_out(
    demo: BenchResult, width: int
) -> None:
    out = _console(width, terminal=True)
    dropped = print_table(demo, out)
    text = out.file.getvalue()
    lines = text.splitlines()
    assert "…" not in text  # no cell is cut
    assert all(len(line) <= width for line in lines)
    header = next(line for line in lines if line.lstrip().startswith("Model"))
    shown = [c for c in COLUMNS if c not in dropped]
    for col in shown:
        assert col in header
    for col in ALWAYS_SHOWN:
        assert col not in dropped
    assert dropped == list(DROPPED_FIRST[: len(dropped)])  # given up in the stated order
    rows = [line for line in lines if line.startswith("edgepose-n")]
    assert len(rows) == 4
    for row, r in zip(rows, demo.rows, strict=True):  # every shown cell of every row, whole, in order
        cells = dict(zip(COLUMNS, r.cells(), strict=True))
        pos = 0
        for col in shown:
            pos = row.index(cells[col], pos) + len(cells[col])
    if width == 80:
        assert "ΔAP vs" in shown and len(dropped) >= 5
    else:
        assert len(dropped) < len(DROPPED_FIRST) and {"AP50", "AR", "ΔAP vs"} <= set(shown)


def test_piped_output_prints_every_column_and_one_line_per_row(demo: BenchResult) -> None:
    out = _console(80, terminal=False)  # a file, a pipe, CI: whatever COLUMNS says
    assert print_table(demo, out) == []
    text = out.file.getvalue()
    assert "…" not in text
    rows = [line for line in text.splitlines() if line.startswith("edgepose-n")]
    assert len(rows) == 4
    for row, r in zip(rows, demo.rows, strict=True):
        for cell in r.cells():
            assert cell in row
    header = next(line for line in text.splitlines() if line.lstrip().startswith("Model"))
    assert all(col in header for col in COLUMNS)


# --- quantize's per-layer report ----------------------------------------------------------------------------
_LAYERS = [  # the shipped model's longest layer names (49 characters) and a short one
    "/backbone/stages.0/stages.0.1/m/m.0/cv1/conv/Conv",
    "/backbone/stages.3/stages.3.1/m/m.0/cv2/conv/Conv",
    "/neck/bu.1/cv3/conv/Conv",
]


def _report(precision: Precision) -> object:
    from edgepose.quant.options import CalibMethod, HighPrecision, LayerPrecision
    from edgepose.quant.report import LayerRow, QuantReport

    mixed = precision is Precision.MIXED

    def precision_of(i: int) -> LayerPrecision:
        if mixed:
            return LayerPrecision.INT16 if i == 0 else LayerPrecision.INT8
        return LayerPrecision(precision.value)

    layers = [
        LayerRow(name, "Conv", precision_of(i), 0.0123 * (i + 1) if mixed else None, i + 1 if mixed else None)
        for i, name in enumerate(_LAYERS)
    ]
    return QuantReport(
        model="m.onnx", output="m.q.onnx", precision=precision, method=CalibMethod.MINMAX, num_calib=48,
        calib_dir="calibration", activation_type="QUInt8", weight_type="QInt8", opset=17, layers=layers,
        high_precision=HighPrecision.INT16 if mixed else None,
    )  # fmt: skip


@pytest.mark.parametrize("width", [80, 120])
def test_quantize_table_never_cuts_a_layer_name(width: int) -> None:
    from edgepose.cli.quantize import print_report

    out = _console(width, terminal=True)
    print_report(_report(Precision.MIXED), out)  # type: ignore[arg-type]
    text = out.file.getvalue()
    assert "…" not in text and all(len(line) <= width for line in text.splitlines())  # notes wrap too
    for name in _LAYERS:
        assert sum(line.startswith(name + " ") for line in text.splitlines()) == 1  # whole, on its row
    assert "0.0123" in text and "0.0369" in text and "int16" in text
    narrow = _console(40, terminal=True)  # narrower than a name: it folds onto the next line, uncut
    print_report(_report(Precision.MIXED), narrow)  # type: ignore[arg-type]
    assert "…" not in narrow.file.getvalue()
    assert _LAYERS[0] in "".join(line.split(" ")[0] for line in narrow.file.getvalue().splitlines())


@pytest.mark.parametrize("precision", [Precision.INT8, Precision.INT16])
def test_one_precision_for_all_prints_a_summary_unless_verbose(precision: Precision) -> None:
    from edgepose.cli.quantize import print_report

    out = _console(80, terminal=True)
    print_report(_report(precision), out)  # type: ignore[arg-type]
    text = out.file.getvalue()
    assert not any(name in text for name in _LAYERS)  # no table of rows that all say the same
    summary = f"3 layers (3 Conv), all at {precision.value}; the decode/NMS tail stays float"
    assert summary in " ".join(text.split())
    piped = _console(80, terminal=False)  # a log keeps each note on one line
    print_report(_report(precision), piped)  # type: ignore[arg-type]
    assert summary in piped.file.getvalue().splitlines()[0]
    verbose = _console(80, terminal=True)
    print_report(_report(precision), verbose, verbose=True)  # type: ignore[arg-type]
    assert all(name in verbose.file.getvalue() for name in _LAYERS)
