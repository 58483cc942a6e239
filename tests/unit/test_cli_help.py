"""Every command's `--help` under the locked typer/rich: no help text eaten as markup, no type on flags."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer
import typer.rich_utils
from typer.testing import CliRunner

from edgepose.cli import app

runner = CliRunner()
_BOX = re.compile(r"[│╭╮╰╯─]")


def _walk(cmd: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app)))


def _flat(text: str) -> str:
    """The text with the panels' box drawing removed and all whitespace collapsed (wrapping undone)."""
    return " ".join(_BOX.sub(" ", text).split())


def test_every_command_is_checked() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"", "data", "data synth", "data preview", "data convert", "val", "predict", "train", "export",
            "quantize", "bench"} <= names  # fmt: skip


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) or "edgepose" for p, _ in COMMANDS])
def test_help_shows_every_help_text_and_no_type_on_flags(
    path: tuple[str, ...], cmd: object, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # typer reads TERMINAL_WIDTH once, when typer.rich_utils is first imported (by whichever test
    # renders help first in this process); set its width directly so the order of tests cannot leak
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", width)
    res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(width), "TERMINAL_WIDTH": str(width)})
    assert res.exit_code == 0, res.output
    assert "<bool>" not in res.output  # a flag takes no value; typer 0.29 prints its type anyway
    text = _flat(res.output)
    for param in cmd.params:  # type: ignore[attr-defined]
        if getattr(param, "help", None) and not getattr(param, "hidden", False):
            # rich reads `[default: ...]` inside a help string as a style tag and drops it
            assert _flat(param.help) in text, (param.name, param.help)
    for line in res.output.splitlines():
        assert len(line) <= width, line
