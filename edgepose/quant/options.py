"""The closed sets of quantization choices, their checks, the output names and the progress callback
(stdlib only, so the CLI can offer, check and wire them without importing onnxruntime)."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from pathlib import Path

from edgepose import defaults
from edgepose.errors import ConfigError
from edgepose.spec import Precision

# Progress callback of every quantization stage: (stage, done, total), e.g. ("sensitivity", 12, 60).
Progress = Callable[[str, int, int], None]


class LayerPrecision(str, enum.Enum):
    INT8 = "int8"
    INT16 = "int16"
    FLOAT = "float"


class HighPrecision(str, enum.Enum):
    """What `--mixed` keeps its sensitive layers at."""

    INT16 = "int16"  # emulates NPUs with 16-bit layers (TIDL, RKNN, QNN)
    FLOAT = "float"  # fast on CPUs: onnxruntime runs 16-bit QDQ through float kernels anyway

    @property
    def layer_precision(self) -> LayerPrecision:
        return LayerPrecision(self.value)


class CalibMethod(str, enum.Enum):
    MINMAX = "minmax"
    PERCENTILE = "percentile"
    ENTROPY = "entropy"


def default_output(model_path: str | os.PathLike[str], precision: Precision) -> Path:
    p = Path(model_path)
    return p.with_name(f"{p.stem}.{precision.value}.onnx")


def report_path(out_path: str | os.PathLike[str]) -> Path:
    """MODEL.onnx -> MODEL.quant.json beside it."""
    p = Path(out_path)
    return p.with_name(f"{p.stem}.quant.json")


def check_options(precision: Precision, budget: float | None, max_drop: float | None, seed: int = 0) -> None:
    if seed < 0:
        raise ConfigError(f"--seed {seed} is negative; use 0 or more (0 is the default sample)")
    if precision is Precision.FLOAT:
        raise ConfigError("precision float is not a quantization; choose --bits 8, --bits 16 or --mixed")
    if budget is not None and not (0.0 < budget < 1.0):
        raise ConfigError(
            f"--budget {budget} is outside (0, 1); it is the fraction of layers kept at high precision, "
            f"e.g. {defaults.MIXED_BUDGET}"
        )
    if max_drop is not None and not (0.0 < max_drop < 1.0):
        raise ConfigError(
            f"--max-drop {max_drop} is outside (0, 1); it is the largest drop in fidelity to float "
            "(1 - mean OKS x score agreement with the float model's people), e.g. 0.01"
        )
