"""The closed sets of quantization choices and the progress callback (stdlib only, so the CLI can offer
and wire them without importing onnxruntime)."""

from __future__ import annotations

import enum
from collections.abc import Callable

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
