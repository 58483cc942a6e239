"""The typer `app` every command module registers on, and the group class that turns usage errors into
one line. Its own module (not `edgepose.cli`'s `__init__`), so command modules never import their
package's `__init__` while it is still running."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from edgepose import __version__

try:  # the click that typer runs on: vendored as typer._click since typer 0.2x, the click package before
    from typer._click.exceptions import BadParameter, ClickException, NoArgsIsHelpError
    from typer.exceptions import Abort
except ImportError:  # pragma: no cover - older typer
    from click.exceptions import Abort, BadParameter, ClickException  # type: ignore[no-redef]

    class NoArgsIsHelpError(Exception):  # type: ignore[no-redef]  # click < 8.2 prints help and exits 0
        pass


def _given_value(exc: Any, argv: Sequence[str]) -> str | None:
    """The command-line value a BadParameter is about (`--opt VALUE` or `--opt=VALUE`), if findable."""
    opts = getattr(getattr(exc, "param", None), "opts", None) or []
    for i in range(len(argv) - 1, -1, -1):
        arg = argv[i]
        for opt in opts:
            if arg == opt and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(opt + "="):
                return arg[len(opt) + 1 :]
    return None


def usage_error_line(exc: Any, argv: Sequence[str]) -> str:
    """A click usage error as one line: what is wrong, the value given, and where the options are."""
    msg = " ".join(exc.format_message().split())
    value = _given_value(exc, argv) if isinstance(exc, BadParameter) else None
    if value is not None and repr(value) not in msg:
        msg = f"{msg} (got {value!r})"
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "edgepose"
    msg = msg.rstrip(".")
    return f"error: {msg}{' ' if msg.endswith('?') else '; '}see `{path} --help`"


def _flags_take_no_value(cmd: Any, ctx: Any) -> None:
    """Give every flag (and the help option) of `cmd` and its subcommands an empty metavar: typer 0.29's
    help prints a flag's type (`--save-json <bool>`) although passing it a value is a usage error."""
    for param in [*cmd.params, cmd.get_help_option(ctx)]:
        if param is not None and getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(cmd, "commands", {}).values():
        _flags_take_no_value(sub, ctx)


class _OneLineUsageErrors(TyperGroup):
    """Runs the command line like click's standalone mode, except that a usage error (unknown option,
    unparsable value, missing argument) prints one line instead of click's Usage block + error box."""

    def get_params(self, ctx: Any) -> list[Any]:
        _flags_take_no_value(self, ctx)  # the whole tree, before any help is rendered
        return super().get_params(ctx)

    def main(
        self, args: Sequence[str] | None = None, *a: Any, standalone_mode: bool = True, **kw: Any
    ) -> Any:
        if not standalone_mode:
            return super().main(args, *a, standalone_mode=False, **kw)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, *a, standalone_mode=False, **kw)
        except NoArgsIsHelpError as exc:  # bare `edgepose data`: the help, as before
            exc.show()
            sys.exit(exc.exit_code)
        except ClickException as exc:
            typer.echo(usage_error_line(exc, argv), err=True)
            sys.exit(exc.exit_code)
        except Abort:  # Ctrl-C / EOF at a prompt
            typer.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)  # Exit(code) comes back as its code; commands return None


app = typer.Typer(
    name="edgepose",
    cls=_OneLineUsageErrors,
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
