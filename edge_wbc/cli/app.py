"""The Typer app, its shared consoles, and the one place where errors become messages and exit codes.

Every command module registers on :data:`app` (or :data:`data_app`). A command raises
:class:`~edge_wbc.errors.EdgeWBCError` (or calls :func:`fail`) and :class:`ErrorHandlingGroup`
turns it into ``error: <message>`` on stderr and exit code 2; nothing else in the CLI catches it.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from ..errors import EdgeWBCError

console = Console(stderr=True)
# Tables are wide: when stdout is not a terminal (CI logs, pipes) do not fold them to 80 columns.
out_console = Console() if sys.stdout.isatty() else Console(width=200)

DATA_HELP = "Data root (else $EDGE_WBC_DATA, else the user cache dir that `edge-wbc data fetch` fills)."
ERROR_EXIT = 2


class CLIError(EdgeWBCError):
    """A command-line argument that cannot be used (reported like every EdgeWBCError: exit 2)."""


def fail(msg: str) -> None:
    """Stop the command with ``error: msg`` and exit code 2 (through the one handler)."""
    raise CLIError(msg)


def print_error(msg: str) -> None:
    console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)


class ErrorHandlingGroup(TyperGroup):
    """The top-level group: every command (sub-groups included) runs inside this one handler."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgeWBCError as e:
            print_error(str(e))
            raise typer.Exit(ERROR_EXIT) from None


app = typer.Typer(cls=ErrorHandlingGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="White-blood-cell models from training to the device: train, convert, classify, bench.")


def version_line() -> str:
    """``edge-wbc <version>, <interpreter backend> <version>`` (the backend ``classify`` would use)."""
    from .. import __version__
    from ..errors import ModelError
    from ..runtime import interpreter_backend

    try:
        _, backend, bversion = interpreter_backend()
    except ModelError as e:
        backend, bversion = "no interpreter", f"({e})"
    return f"edge-wbc {__version__}, interpreter {backend} {bversion}"


def _version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and the interpreter backend, then exit.")):
    """White-blood-cell models from training to the device: train, convert, classify, bench."""


data_app = typer.Typer(no_args_is_help=True, help="Find, fetch and inspect datasets.")


def quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def say(s: str) -> None:
    """Progress lines of the library functions (their ``log``), on stderr."""
    console.print(s, highlight=False)


def _terminate(signum, frame) -> None:
    """SIGTERM -> SystemExit(143): unwinds like Ctrl-C, so `with` blocks and atomic_open clean up.

    (Without a handler SIGTERM kills Python on the spot and leaves temp files behind. Typer turns
    KeyboardInterrupt into exit 130 but lets SystemExit through, so this keeps its own code.)
    """
    raise SystemExit(128 + signum)


def main() -> None:
    import signal

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except SystemExit as e:
        if e.code in (130, 128 + signal.SIGTERM):
            console.print("interrupted" if e.code == 130 else "terminated (SIGTERM)", highlight=False)
        raise
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
