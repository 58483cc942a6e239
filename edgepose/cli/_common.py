"""What every command shares: the consoles and the boundary that turns errors into one line."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from edgepose.errors import EdgeposeError

if TYPE_CHECKING:
    from rich.progress import Progress

P = ParamSpec("P")
R = TypeVar("R")

console = Console()  # results: tables, summaries
err_console = Console(stderr=True)  # progress bars, warnings, errors

# The overwrite rule (edgepose.fsio.check_new, README "Outputs"): every command that writes refuses an
# existing output before doing any work, unless --force; the new output replaces the old atomically.
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Replace existing output (without it, an existing output is an error)."),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` as one line on stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    return typer.Exit(code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: EdgeposeError -> one line + exit 1; Ctrl-C/SIGTERM -> exit 130.

    Other exceptions are bugs and keep their traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except EdgeposeError as exc:
            raise fail(str(exc).replace("\n", " ")) from None
        except KeyboardInterrupt:
            raise fail("interrupted; no partial output was kept", 130) from None

    return wrapper


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def stage_bars(width: int, *, transient: bool) -> Iterator[tuple[Progress, Callable[[str, int, int], None]]]:
    """Progress bars on stderr, one per stage name, and the `(stage, done, total)` callback that feeds
    them (the library's progress signature: quantize_model, run_bench)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn(f"{{task.description:<{width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=transient) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield bar, progress
