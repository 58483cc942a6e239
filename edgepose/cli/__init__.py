"""The `edgepose` command: a typer app of thin commands over importable library functions.

Each command module registers itself on `app` (edgepose.cli._app) and imports heavy libraries (torch,
onnx) inside the command body, so `edgepose --help` stays fast and torch-free.
"""

from __future__ import annotations

import importlib
import signal

from edgepose.cli._app import app

__all__ = ["app", "main"]

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
