"""Which precision variants to benchmark (`--variants float,int16,int8,mixed`), and how a measured file's
variant is named in the table, the plot and bench.json."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping

from edgepose.errors import ConfigError
from edgepose.quant.options import HighPrecision
from edgepose.spec import QUANT_METHOD_KEY, Precision

# Report order: the float reference first, then from the most to the least precise.
ALL_VARIANTS: tuple[Precision, ...] = (Precision.FLOAT, Precision.INT16, Precision.INT8, Precision.MIXED)
_NAMES = tuple(p.value for p in ALL_VARIANTS)


def parse_variants(text: str) -> tuple[Precision, ...]:
    """Comma-separated variant names (any case, spaces allowed) -> Precisions in report order, unique."""
    chosen: set[Precision] = set()
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in _NAMES:
            close = difflib.get_close_matches(name, _NAMES, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown variant {raw.strip()!r}; choose from {', '.join(_NAMES)}{hint}")
        chosen.add(Precision(name))
    if not chosen:
        raise ConfigError(f"--variants {text!r} names no variant; choose from {', '.join(_NAMES)}")
    return tuple(p for p in ALL_VARIANTS if p in chosen)


# The two --mixed flavours differ by what their sensitive layers are kept at (the file's recorded
# high_precision). This is the one place they are named: a rename (e.g. "mixed for NPU") is one line here.
MIXED_LABELS: dict[HighPrecision, str] = {
    HighPrecision.INT16: "mixed-npu16",  # 16-bit islands: emulates a 16-bit NPU (TIDL, RKNN, QNN)
    HighPrecision.FLOAT: "mixed-cpu",  # float islands that run float: for CPUs
}


def high_precision_of(props: Mapping[str, str]) -> HighPrecision:
    """What a mixed file keeps its sensitive layers at, from its quantization metadata (int16, the only
    flavour before it was recorded, when the file does not say)."""
    recorded = json.loads(props.get(QUANT_METHOD_KEY, "{}")).get("high_precision")
    return HighPrecision(recorded) if recorded else HighPrecision.INT16


def variant_label(precision: Precision, props: Mapping[str, str]) -> str:
    """The Variant a person reads: the precision, and for --mixed its flavour (`mixed-npu16`)."""
    return MIXED_LABELS[high_precision_of(props)] if precision is Precision.MIXED else precision.value
