"""What every command shares: the consoles and the boundary that turns errors into one line."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

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
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True, markup=True)
    return typer.Exit(code)


# What the base install (`pip install .`) leaves out: pyproject's [train] extra, by import name.
_TRAIN_EXTRA = {"torch": "PyTorch", "yaml": "PyYAML", "onnxslim": "onnxslim"}
# Which part of a command needs it, where not all of it does (by command function name).
_NEEDS_EXTRA = {
    "val": ("`edgepose val --weights`", "; scoring a results file (val --pred) needs no torch"),
    "bench": ("`edgepose bench` of a checkpoint (.pt)", "; ONNX files are benchmarked without torch"),
}


def _extra_pin(module: str) -> str:
    """`torch==2.13.0`: the [train] extra's requirement for `module`, read from the installed metadata
    (pyproject.toml is the one place the pin is written); just `module` when edgepose is not installed."""
    from importlib import metadata

    try:
        requires = metadata.requires("edgepose") or []
    except metadata.PackageNotFoundError:
        return module
    for req in requires:
        spec, _, marker = req.partition(";")
        if "train" in marker and spec.strip().lower().startswith(module):
            return spec.strip()
    return module


def missing_extra_line(command: str, exc: ModuleNotFoundError) -> str | None:
    """The one-line message for a module of the training extra missing from a base install (None when
    `exc` is about another module: that is a broken install or a bug, and keeps its traceback)."""
    module = (exc.name or "").split(".")[0]
    if module not in _TRAIN_EXTRA:
        return None
    what, other = _NEEDS_EXTRA.get(command, (f"`edgepose {command}`", ""))
    torch = _extra_pin("torch")
    version = torch.partition("==")[2]
    gpu = f"; on a GPU machine install your CUDA build of torch {version} first" if version else ""
    return (
        f"{what} needs {_TRAIN_EXTRA[module]}, which the base install (pip install .) leaves out; install "
        f'the training extra: pip install "edgepose[train]" (it pins {torch}{gpu}){other}'
    )


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: EdgeposeError -> one line + exit 1; a module of the training extra missing
    (base install) -> one line naming the install command; Ctrl-C/SIGTERM -> exit 130.

    Other exceptions are bugs and keep their traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except EdgeposeError as exc:
            raise fail(str(exc).replace("\n", " ")) from None
        except ModuleNotFoundError as exc:
            line = missing_extra_line(fn.__name__, exc)
            if line is None:
                raise
            raise fail(line) from None
        except KeyboardInterrupt:
            raise fail("interrupted; no partial output was kept", 130) from None

    return wrapper


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


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
