"""The `edgepose` command: a typer app of thin commands over importable library functions.

Each command module registers itself on `app` and imports heavy libraries (torch, onnx)
inside the command body, so `edgepose --help` stays fast and torch-free.
"""

from __future__ import annotations

import importlib
import signal
from typing import Annotated

import typer

from edgepose import __version__

app = typer.Typer(
    name="edgepose",
    help="YOLO-Pose from training to an embedded board: data, train, export, quantize, bench, predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # internal errors keep a plain traceback; user errors never get one
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgepose {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """edgepose command line."""


# One module per command (group); each adds itself to `app` when imported.
_COMMAND_MODULES = ("data", "val", "predict", "train", "export", "quantize", "bench")
for _name in _COMMAND_MODULES:
    importlib.import_module(f"edgepose.cli.{_name}")


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point: SIGTERM is treated like Ctrl-C so outputs are cleaned up."""
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    app()
