"""BenchRow builders for the bench report and table tests (no model is run)."""

from __future__ import annotations

from typing import Any

from edgepose.bench.kernels import KernelCounts
from edgepose.bench.result import BenchRow
from edgepose.spec import Precision


def bench_row(label: str, variant: Precision, ap: float, lineage: str, **changes: Any) -> BenchRow:
    """A row of a 64 px model at `ap` (every AP figure), 4 ms p50; `changes` overrides any field."""
    fields: dict[str, Any] = dict(
        label=label, model=f"{label}.onnx", source="onnx", variant=variant, name="m", input_size=(64, 64),
        cached=None, ap=ap, ap50=ap, ap75=ap, ar=ap, num_images=1, num_detections=1, p50_ms=4.0,
        p90_ms=5.0, fps=250.0, preprocess_ms=1.0, inference_ms=2.0, postprocess_ms=1.0, runs=3, warmup=1,
        size_bytes=2_000_000, layers_16bit_pct=None, kernels=KernelCounts(0, 0, 1), lineage=lineage,
    )  # fmt: skip
    fields.update(changes)
    return BenchRow(**fields)
