"""QuantReport: what `edgepose quantize` did, as JSON beside the model and rows for a table; and the
metadata the quantized file carries (quant_metadata)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import onnx
import onnxruntime as ort

from edgepose import fsio
from edgepose.onnxkit.model import metadata
from edgepose.quant.fidelity import Fidelity
from edgepose.quant.graph import Layer
from edgepose.quant.options import CalibMethod, HighPrecision, LayerPrecision
from edgepose.quant.plan import QUANT_FORMAT, PrecisionPlan, activation_type_name, weight_type_name
from edgepose.quant.ranges import HEADROOM_16BIT
from edgepose.spec import (
    METADATA_PREFIX,
    QUANT_METHOD_KEY,
    QUANT_PLAN_KEY,
    QUANT_SOURCE_KEY,
    PoseSpec,
    Precision,
)

if TYPE_CHECKING:
    from edgepose.quant.engine import MixedOutcome
    from edgepose.quant.optimize import OptimizationLog


@dataclass
class LayerRow:
    name: str
    op: str
    precision: LayerPrecision
    # Task sensitivity (--mixed): the fidelity drop with only this layer at 8 bits (edgepose.quant.taskprobe)
    sensitivity: float | None = None
    rank: int | None = None  # 1 = promoted first
    optimizations: list[str] = field(default_factory=list)  # kept 8-bit stages that changed this layer
    macs: int | None = None  # multiply-accumulates per image (--mixed)


@dataclass
class QuantReport:
    model: str
    output: str
    precision: Precision
    method: CalibMethod
    num_calib: int
    calib_dir: str
    activation_type: str
    weight_type: str
    opset: int
    layers: list[LayerRow]
    high_precision: HighPrecision | None = None
    budget: float | None = None
    max_drop: float | None = None
    raw_nmse: float | None = None  # this model's raw head outputs vs float (NMSE, probe images)
    num_probe_images: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Fidelity to float on the check images (edgepose.quant.fidelity) of the written model: end to end
    # (its own NMS, people matched by OKS: what bench reports) and at the float model's detections
    # (the float NMS selection fed in: the unit of the search, the optimizations and --max-drop);
    # fidelity_int8: the all-8-bit model with the kept optimizations, in that second unit.
    fidelity: Fidelity | None = None
    fidelity_anchored: Fidelity | None = None
    fidelity_int8: Fidelity | None = None
    optimizations: list[dict[str, object]] = field(default_factory=list)  # optimize.OptimizationLog
    search: list[str] = field(default_factory=list)  # --mixed: each plan tried, predicted vs measured
    predicted_drop: float | None = None  # --mixed: the chosen plan's additive prediction
    latency_aware: bool | None = None
    quantize_reused: bool = False  # the written model is one an earlier stage built (no second build)
    seed: int = 0  # the fitted rounding's patch sample (quantize --seed)

    @classmethod
    def build(cls, *, plan: PrecisionPlan, seconds: dict[str, float], **fields: object) -> QuantReport:
        """The report of one quantize_model run: onnxruntime's type names of the plan's default precision
        (from `plan.py`), seconds rounded to 10 ms, every other field as given."""
        return cls(
            activation_type=activation_type_name(plan.default),
            weight_type=weight_type_name(plan.default),
            seconds={k: round(v, 2) for k, v in seconds.items()},
            **fields,  # type: ignore[arg-type]
        )

    def high_precision_layers(self) -> list[str]:
        """Layers kept above 8 bits by the plan (--mixed), in graph order."""
        if self.precision is not Precision.MIXED:
            return []
        return [r.name for r in self.layers if r.precision is not LayerPrecision.INT8]

    @property
    def fraction_high(self) -> float:
        if self.precision is Precision.INT16:
            return 1.0
        return len(self.high_precision_layers()) / max(1, len(self.layers))

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        for k in ("precision", "method", "high_precision"):
            d[k] = d[k].value if d[k] is not None else None
        for row, r in zip(d["layers"], self.layers, strict=True):  # type: ignore[call-overload]
            row["precision"] = r.precision.value
        for k in ("fidelity", "fidelity_anchored", "fidelity_int8"):
            f = getattr(self, k)
            d[k] = f.to_dict() if f is not None else None
        d["high_precision_layers"] = self.high_precision_layers()
        d["fraction_high"] = self.fraction_high
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """(layer, op, task sensitivity, rank, precision, optimizations) per layer, graph order."""
        out = []
        for r in self.layers:
            sens = "-" if r.sensitivity is None else f"{r.sensitivity:.4f}"
            rank = "-" if r.rank is None else str(r.rank)
            out.append((r.name, r.op, sens, rank, r.precision.value, ", ".join(r.optimizations) or "-"))
        return out

    @property
    def uses_16bit(self) -> bool:
        """Whether any tensor is quantized at 16 bits (those get headroom: edgepose.quant.ranges); a --mixed
        plan that kept every layer at 8 bits has none."""
        if self.precision is Precision.INT16:
            return True
        return self.high_precision is HighPrecision.INT16 and bool(self.high_precision_layers())

    def summary(self) -> list[str]:
        """Totals, one line each."""
        n_high = len(self.layers) if self.precision is Precision.INT16 else len(self.high_precision_layers())
        lines = [
            f"precision {self.precision.value}: {n_high}/{len(self.layers)} layers "
            f"({100 * self.fraction_high:.0f}%) at "
            + ("16 bits" if self.precision is Precision.INT16 else "high precision")
            + (f" ({self.high_precision.value})" if self.high_precision else ""),
            f"calibration: {self.num_calib} images, {self.method.value}; activations {self.activation_type}, "
            f"weights {self.weight_type} per-channel; opset {self.opset}"
            + (f"; 16-bit ranges with {HEADROOM_16BIT:g}x headroom" if self.uses_16bit else ""),
        ]
        if self.fidelity is not None:
            f = self.fidelity
            lines.append(
                f"fidelity to float, end to end ({self.num_probe_images} images, {f.num_ref} people): "
                f"mean OKS {f.mean_oks:.4f}, kept {100 * f.recovered:.1f}%, score Δ {f.score_mae:.4f}, "
                f"drop {f.drop:.4f}"
            )
        if self.fidelity_anchored is not None:
            drop = self.fidelity_anchored.drop
            line = f"fidelity drop at the float model's detections (search unit): {drop:.4f}"
            if self.fidelity_int8 is not None and self.precision is Precision.MIXED:
                line += f" (all 8-bit: {self.fidelity_int8.drop:.4f})"
            if self.predicted_drop is not None:
                line += f"; predicted {self.predicted_drop:.4f}"
            lines.append(line)
        if self.raw_nmse is not None:
            lines.append(
                f"raw-output error vs float (NMSE, {self.num_probe_images} images): {self.raw_nmse:.3g}"
            )
        for step in self.optimizations:
            lines.append("optimization " + _describe_step(step))
        for trial in self.search:
            lines.append("mixed search: " + trial)
        lines.append("time: " + ", ".join(self._describe_time(k, v) for k, v in self.seconds.items()))
        return lines + self.notes

    def _describe_time(self, stage: str, seconds: float) -> str:
        """'quantize 0.0 s' would read like a fault when an earlier stage already built the written model
        (each model is built once per run: int8's by the optimize stage, a mixed plan's by the search)."""
        if stage == "quantize" and self.quantize_reused:
            return f"{stage} {seconds:.1f} s (the model an earlier stage built)"
        return f"{stage} {seconds:.1f} s"


def _describe_step(step: dict[str, object]) -> str:
    before, after = step.get("drop_before"), step.get("drop_after")
    verdict = "kept" if step.get("kept") else "dropped (measured no better)"
    drops = (
        f"fidelity drop {before:.4f} -> {after:.4f}, "
        if isinstance(before, float) and isinstance(after, float)
        else ""
    )
    detail = f"; {step['detail']}" if step.get("detail") else ""
    return f"{step['stage']}: {drops}{verdict}{detail} ({step.get('seconds', 0):.1f} s)"


def quant_metadata(
    model: onnx.ModelProto, spec: PoseSpec, plan: PrecisionPlan, report: QuantReport, kept: list[str]
) -> dict[str, str]:
    """Our metadata_props of the quantized file: the float file's with the precision, plan, method (with
    the kept 8-bit optimizations) and the float file's identity (QUANT_SOURCE_KEY: what bench takes ΔAP
    against). Sorted by key: deterministic bytes."""
    quant_method = {
        "method": report.method.value,
        "num_calib": report.num_calib,
        "activations": report.activation_type,
        "weights": report.weight_type + " per-channel symmetric",
        "high_precision": report.high_precision.value if report.high_precision else None,
        "format": QUANT_FORMAT.name,
        "onnxruntime": ort.__version__,
        "optimizations": kept,
    }
    props = {k: v for k, v in metadata(model).items() if k.startswith(METADATA_PREFIX)}
    props.update(spec.replace(precision=report.precision).to_metadata())
    props[QUANT_PLAN_KEY] = json.dumps(plan.high() if report.precision is Precision.MIXED else [])
    props[QUANT_METHOD_KEY] = json.dumps(quant_method, sort_keys=True)
    source = {"sha256": fsio.file_digest(report.model), "file": Path(report.model).name}
    props[QUANT_SOURCE_KEY] = json.dumps(source, sort_keys=True)
    return dict(sorted(props.items()))


def layer_rows(
    layers: Sequence[Layer], plan: PrecisionPlan, outcome: MixedOutcome | None, log: OptimizationLog
) -> list[LayerRow]:
    """Per layer: task sensitivity and rank (--mixed), precision, and the optimizations that changed it."""
    sens = outcome.sensitivity if outcome else None
    rank = {i: r + 1 for r, i in enumerate(outcome.order)} if outcome else {}
    opts = log.per_layer()
    rows = []
    for i, la in enumerate(layers):
        precision = plan.of(la.name)
        done = [
            o
            for o in opts.get(la.name, [])
            if precision is LayerPrecision.INT8 or o in ("equalize", "ranges")
        ]
        rows.append(
            LayerRow(
                la.name,
                la.op,
                precision,
                sens[i] if sens else None,
                rank.get(i),
                done,
                outcome.macs[i] if outcome else None,
            )
        )
    return rows
