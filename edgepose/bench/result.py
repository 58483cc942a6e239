"""Bench results: one row per measured model file, and the settings they were measured under."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgepose.bench.intervals import ImageEvals
from edgepose.bench.kernels import KernelCounts
from edgepose.data.coco_eval import points, signed_points
from edgepose.spec import Precision

# (header, row -> cell) for the terminal table and bench.md; AP figures shown x100 (COCO points).
COLUMNS: tuple[str, ...] = (
    "Model", "Variant", "AP", "AP50", "AP75", "AR", "ΔAP", "ΔAP vs", "OKS→float", "Kept %", "Score Δ",
    "p50 ms", "p90 ms", "FPS", "pre/infer/post ms", "Size MB", "16-bit %", "Kernels",
)  # fmt: skip
ROW_KEYS: tuple[str, ...] = (
    "label", "model", "source", "variant", "variant_label", "name", "input_size", "cached", "lineage",
    "ap", "ap50", "ap75", "ar", "delta_ap", "delta_ap_vs", "fidelity_oks", "fidelity_recovered",
    "fidelity_score_mae", "fidelity_refs", "num_images", "num_detections",
    "p50_ms", "p90_ms", "fps", "preprocess_ms", "inference_ms", "postprocess_ms", "runs", "warmup",
    "size_bytes", "size_mb", "layers_16bit_pct", "kernel_mode", "fused_int8_layers", "emulated_layers",
    "float_layers",
)  # fmt: skip


@dataclass
class BenchRow:
    label: str
    model: str  # path of the file measured (a cache entry for checkpoint variants)
    source: str  # "checkpoint" or "onnx"
    variant: Precision
    name: str  # model name from the metadata
    input_size: tuple[int, int]
    cached: bool | None  # checkpoint variants: reused from the cache; None for ONNX inputs
    ap: float | None  # COCO keypoint metrics, fractions in [0, 1]; None on an unlabelled val set
    ap50: float | None
    ap75: float | None
    ar: float | None
    num_images: int
    num_detections: int
    p50_ms: float
    p90_ms: float
    fps: float
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    runs: int
    warmup: int
    size_bytes: int
    layers_16bit_pct: float | None  # None for float models
    kernels: KernelCounts
    variant_label: str = ""  # the Variant column: the precision, and for mixed its flavour (variants.py)
    lineage: str = ""  # sha256 of the float model this file is or was quantized from ("": not recorded)
    delta_ap: float | None = None  # ap - the same lineage's float ap; None without such a float row
    delta_ap_vs: str | None = None  # the label of that float row
    # Fidelity to the same lineage's float row on the same images (edgepose.quant.fidelity); None without.
    fidelity_oks: float | None = None  # mean OKS to the float people (score >= deployment threshold)
    fidelity_recovered: float | None = None  # share of those found again (quant.fidelity: recovered)
    fidelity_score_mae: float | None = None  # mean |score - float score| over the matched people
    fidelity_refs: int | None = None  # how many float detections were compared
    # COCOeval's per-image results behind `ap` (not in bench.json): AP of other image sets, intervals
    image_evals: ImageEvals | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {k: getattr(self, k) for k in ROW_KEYS if hasattr(self, k)}
        d["variant"] = self.variant.value
        d["variant_label"] = self.variant_label or self.variant.value
        d["input_size"] = list(self.input_size)
        d["size_mb"] = self.size_bytes / 1e6
        d["kernel_mode"] = self.kernels.mode.value
        d["fused_int8_layers"] = self.kernels.fused_int
        d["emulated_layers"] = self.kernels.emulated
        d["float_layers"] = self.kernels.float_layers
        return {k: d[k] for k in ROW_KEYS}

    def cells(self) -> tuple[str, ...]:
        """The COLUMNS of this row as display strings."""
        delta = "n/a" if self.delta_ap is None else signed_points(self.delta_ap)
        aps = (("n/a" if v is None else points(v)) for v in (self.ap, self.ap50, self.ap75, self.ar))
        pct = "–" if self.layers_16bit_pct is None else f"{self.layers_16bit_pct:.0f}"
        oks = "–" if self.fidelity_oks is None else f"{self.fidelity_oks:.3f}"
        kept = "–" if self.fidelity_recovered is None else f"{100 * self.fidelity_recovered:.1f}"
        sdiff = "–" if self.fidelity_score_mae is None else f"{self.fidelity_score_mae:.3f}"
        split = f"{self.preprocess_ms:.1f}/{self.inference_ms:.1f}/{self.postprocess_ms:.1f}"
        return (
            self.label, self.variant_label or self.variant.value,
            *aps, delta, self.delta_ap_vs or "n/a",
            oks, kept, sdiff, f"{self.p50_ms:.2f}", f"{self.p90_ms:.2f}", f"{self.fps:.1f}", split,
            f"{self.size_bytes / 1e6:.2f}", pct, self.kernels.describe(),
        )  # fmt: skip


@dataclass
class BenchResult:
    rows: list[BenchRow]
    settings: dict[str, object]  # thresholds, threads, runs, data, machine: everything a reader needs
    warnings: list[str] = field(default_factory=list)
    made: list[str] = field(default_factory=list)  # cache entries created by this run
    reused: list[str] = field(default_factory=list)  # cache entries reused
    outputs: dict[str, str] = field(default_factory=dict)  # "json"/"md"/"png" -> path written

    def to_dict(self) -> dict[str, object]:
        return {
            "settings": self.settings,
            "columns": list(ROW_KEYS),
            "rows": [r.to_dict() for r in self.rows],
            "warnings": self.warnings,
            "cache": {"made": self.made, "reused": self.reused},
        }


def fill_delta_ap(rows: list[BenchRow]) -> None:
    """ΔAP of each row against the first float row of the same lineage (the float model it is, or was
    quantized from, by file content, not by name): exactly 0.0 for that row itself; None without one, or
    without AP (an unlabelled val set: ΔAP vs still names the float row fidelity is measured against)."""
    reference: dict[str, BenchRow] = {}
    for r in rows:
        if r.variant is Precision.FLOAT and r.lineage and r.lineage not in reference:
            reference[r.lineage] = r
    for r in rows:
        ref = reference.get(r.lineage) if r.lineage else None
        unlabelled = ref is None or r.ap is None or ref.ap is None  # no AP: the reference is still named
        r.delta_ap = None if unlabelled else r.ap - ref.ap  # type: ignore[operator,union-attr]
        r.delta_ap_vs = None if ref is None else ref.label
