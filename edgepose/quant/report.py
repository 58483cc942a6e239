"""QuantReport: what `edgepose quantize` did, as JSON beside the model and rows for a table."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from edgepose.quant.graph import Layer
from edgepose.quant.options import CalibMethod, HighPrecision, LayerPrecision
from edgepose.quant.plan import PrecisionPlan, activation_type_name, weight_type_name
from edgepose.quant.search import MixedSearch
from edgepose.spec import Precision


@dataclass
class LayerRow:
    name: str
    op: str
    precision: LayerPrecision
    sensitivity: float | None = None  # raw-output NMSE with only this layer at 8 bits (--mixed only)
    rank: int | None = None  # 1 = most sensitive

    @property
    def sqnr_db(self) -> float | None:
        if self.sensitivity is None:
            return None
        return math.inf if self.sensitivity <= 0 else -10.0 * math.log10(self.sensitivity)


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
    raw_nmse_int8: float | None = None  # the all-8-bit model's, for comparison (--mixed only)
    num_probe_images: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        *,
        model: str,
        output: str,
        precision: Precision,
        method: CalibMethod,
        num_calib: int,
        calib_dir: str,
        plan: PrecisionPlan,
        layers: Sequence[Layer],
        search: MixedSearch | None,
        opset: int,
        high_precision: HighPrecision | None,
        budget: float | None,
        max_drop: float | None,
        raw_nmse: float,
        raw_nmse_int8: float | None,
        num_probe_images: int,
        seconds: dict[str, float],
        notes: list[str],
    ) -> QuantReport:
        """The report of one quantize_model run: one row per layer of `layers` with its precision under
        `plan` and, when `search` (--mixed) chose the plan, its score and rank; onnxruntime's type names
        of the plan's default precision (from `plan.py`); seconds rounded to 10 ms."""
        rank = {i: r + 1 for r, i in enumerate(search.order)} if search else {}
        rows = [
            LayerRow(la.name, la.op, plan.of(la.name), search.scores[i] if search else None, rank.get(i))
            for i, la in enumerate(layers)
        ]
        return cls(
            model=model,
            output=output,
            precision=precision,
            method=method,
            num_calib=num_calib,
            calib_dir=calib_dir,
            activation_type=activation_type_name(plan.default),
            weight_type=weight_type_name(plan.default),
            opset=opset,
            layers=rows,
            high_precision=high_precision,
            budget=budget,
            max_drop=max_drop,
            raw_nmse=raw_nmse,
            raw_nmse_int8=raw_nmse_int8,
            num_probe_images=num_probe_images,
            seconds={k: round(v, 2) for k, v in seconds.items()},
            notes=notes,
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
            row["sqnr_db"] = None if r.sqnr_db is None or math.isinf(r.sqnr_db) else round(r.sqnr_db, 2)
        d["high_precision_layers"] = self.high_precision_layers()
        d["fraction_high"] = self.fraction_high
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(layer, op, sensitivity, SQNR dB, precision) per layer, graph order."""
        out = []
        for r in self.layers:
            sens = "-" if r.sensitivity is None else f"{r.sensitivity:.3g}"
            db = "-" if r.sqnr_db is None else ("inf" if math.isinf(r.sqnr_db) else f"{r.sqnr_db:.1f}")
            out.append((r.name, r.op, sens, db, r.precision.value))
        return out

    def summary(self) -> list[str]:
        """Totals, one line each."""
        n_high = len(self.layers) if self.precision is Precision.INT16 else len(self.high_precision_layers())
        lines = [
            f"precision {self.precision.value}: {n_high}/{len(self.layers)} layers "
            f"({100 * self.fraction_high:.0f}%) at "
            + ("16 bits" if self.precision is Precision.INT16 else "high precision")
            + (f" ({self.high_precision.value})" if self.high_precision else ""),
            f"calibration: {self.num_calib} images, {self.method.value}; activations {self.activation_type}, "
            f"weights {self.weight_type} per-channel; opset {self.opset}",
        ]
        if self.raw_nmse is not None:
            err = f"raw-output error vs float (NMSE, {self.num_probe_images} images): {self.raw_nmse:.3g}"
            if self.raw_nmse_int8 is not None:
                gain = 1.0 - self.raw_nmse / self.raw_nmse_int8 if self.raw_nmse_int8 > 0 else 0.0
                err += f" (all 8-bit: {self.raw_nmse_int8:.3g}; {100 * gain:.0f}% of that error removed)"
            lines.append(err)
        lines.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()))
        return lines + self.notes
