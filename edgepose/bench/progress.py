"""How bench reports what it is doing: one progress signature for every long step, and one for warnings."""

from __future__ import annotations

from collections.abc import Callable

# (stage, done, total): exporting, quantizing, synthesizing the val set, evaluating, timing. The CLI
# draws one bar per stage name; the library never prints.
Progress = Callable[[str, int, int], None]
# (done, total) of a single stage: what `Progress` becomes once the stage name is fixed (`for_stage`).
StageProgress = Callable[[int, int], None]
Warn = Callable[[str], None]


def for_stage(progress: Progress | None, stage: str) -> StageProgress | None:
    """`progress` with its stage name bound, for a function that reports one stage (None stays None)."""
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)
