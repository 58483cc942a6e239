"""Which precision variants to benchmark: parsed from `--variants float,int16,int8,mixed`."""

from __future__ import annotations

import difflib

from edgepose.errors import ConfigError
from edgepose.spec import Precision

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
