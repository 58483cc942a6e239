"""Fidelity to float in `edgepose bench`: each variant's people compared with its float model's, no labels.

The float row of a group records its confident detections per image while it is evaluated; every
other row of the group is compared image by image as it is evaluated (edgepose.quant.fidelity), so
nothing but the float model's confident detections is kept in memory. Float rows therefore have to be
evaluated first (run.py orders them so); the table keeps the order the user gave.
"""

from __future__ import annotations

from edgepose.bench.accuracy import OnImage
from edgepose.quant.fidelity import Detections, Fidelity, FidelityMeter
from edgepose.runtime.results import PoseResult


def _detections(res: PoseResult) -> Detections:
    return Detections(res.boxes, res.scores, res.keypoints)


class FidelityReferences:
    """Per group, the float model's confident detections of every image."""

    def __init__(self) -> None:
        self._refs: dict[str, dict[int, Detections]] = {}

    def has(self, group: str) -> bool:
        return group in self._refs

    def recorder(self, group: str, sigmas: tuple[float, ...]) -> OnImage:
        """The hook for the group's float model: keeps what a comparison needs."""
        keep: dict[int, Detections] = {}
        self._refs[group] = keep
        select = FidelityMeter(sigmas)

        def on_image(i: int, res: PoseResult) -> None:
            keep[i] = select.reference(_detections(res))

        return on_image

    def comparer(self, group: str, sigmas: tuple[float, ...]) -> tuple[OnImage, FidelityMeter] | None:
        """The hook for another model of the group, and the meter it fills; None without a float row."""
        refs = self._refs.get(group)
        if refs is None:
            return None
        meter = FidelityMeter(sigmas)

        def on_image(i: int, res: PoseResult) -> None:
            meter.add(refs.get(i, Detections.empty(len(sigmas))), _detections(res))

        return on_image, meter


def fidelity_cells(result: Fidelity | None) -> dict[str, float | int | None]:
    """The BenchRow fields for one model's fidelity (all None when there is no float reference)."""
    if result is None:
        return {"fidelity_oks": None, "fidelity_recovered": None, "fidelity_score_mae": None,
                "fidelity_refs": None}  # fmt: skip
    return {
        "fidelity_oks": result.mean_oks,
        "fidelity_recovered": result.recovered,
        "fidelity_score_mae": result.score_mae,
        "fidelity_refs": result.num_ref,
    }
