"""The Typer app, its shared consoles, and the one place where errors become messages and exit codes.

Every command module registers on :data:`app` (or :data:`data_app`). A command raises
:class:`~edge_wbc.errors.EdgeWBCError` (or calls :func:`fail`) and :class:`ErrorHandlingGroup`
turns it into ``error: <message>`` on stderr and exit code 2; nothing else in the CLI catches it.
"""

from __future__ import annotations

import inspect
import os
import sys

import typer
import typer.rich_utils
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup, TyperOption

from ..errors import EdgeWBCError

_display_type_rich = TyperOption.display_type_rich


def _flag_type(self, ctx):
    """Flags show no type in help: Typer's ``<bool>`` made users type ``--tile true`` ("true" became a path)."""
    return None if self.is_flag else _display_type_rich(self, ctx)


TyperOption.display_type_rich = _flag_type


def _unwrap(paragraph: str) -> str:
    """One help paragraph as one line: the docstrings are wrapped for the source (at 120 columns), and Typer's
    rich mode kept those breaks, so `classify --help` showed ragged half-lines at every terminal width.
    A paragraph that starts with ``\\b`` keeps its lines (Click's convention)."""
    return paragraph if paragraph.lstrip("\n").startswith("\b") else " ".join(paragraph.split())


if hasattr(typer.rich_utils, "_fix_linebreaks") and hasattr(typer.rich_utils, "_make_command_help"):
    # private Typer functions (0.29): if a later Typer calls them differently, fall back to its own
    _fix_linebreaks, _make_command_help = typer.rich_utils._fix_linebreaks, typer.rich_utils._make_command_help

    def _fix(*args, **kw):
        try:
            return "\n\n".join(map(_unwrap, kw.get("paragraphs", args[0] if args else None)))
        except Exception:  # noqa: BLE001
            return _fix_linebreaks(*args, **kw)

    def _command_help(*args, **kw):
        try:
            kw = {**kw, "help_text": _unwrap(inspect.cleandoc(kw["help_text"]).split("\n\n")[0])}
        except Exception:  # noqa: BLE001
            pass
        return _make_command_help(*args, **kw)

    typer.rich_utils._fix_linebreaks, typer.rich_utils._make_command_help = _fix, _command_help

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
                  help="White-blood-cell models from training to the device: train, convert, classify, bench.\n\n"
                       "Conventions: -m/--model is the model (a path or a shipped name, see `edge-wbc models`); "
                       "--out DIR is a folder; --csv FILE / --json FILE are tables.")


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
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and the interpreter backend, then exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Show library logs (TFLite / LiteRT INFO lines, TensorFlow start-up)."),
):
    # (no docstring: the app's help, with the conventions, is the one shown)
    if verbose:
        os.environ["EDGE_WBC_VERBOSE"] = "1"


data_app = typer.Typer(no_args_is_help=True, help="Find, fetch and inspect datasets.")


def quiet_tf() -> None:
    """TensorFlow quiet unless ``-v``: its C++ logs off, and its start-up lines (absl, CUDA factories,
    oneDNN) filtered from stderr while it is imported here."""
    from ..runtime.interpreter import quiet_native_stderr, verbose

    if verbose():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    with quiet_native_stderr():
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
        except ImportError:
            pass  # the command says that it needs the train extra


# ---- shared checks, run before a command does any work ------------------------------------------
def check_inputs(paths, what: str = "image") -> None:
    """Missing input paths and inputs without a single image file are usage errors (exit 2), found first."""
    from itertools import islice

    from ..data import iter_inputs
    from ..preprocess import display_name

    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        fail(f"{display_name(missing[0])}: no such file or directory")
    if not list(islice(iter_inputs(paths, onerror=lambda d, e: None), 1)):
        fail(f"no {what} files found in {', '.join(map(display_name, paths))} (0 images)")


def check_out_file(path, flag: str) -> None:
    """An output file option (``--csv``, ``--json`` ...): not a directory, its parent not a file."""
    if path is None:
        return
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        fail(f"{flag} {p}: is a directory; give a file name, e.g. {flag} {p / ('out' + (p.suffix or _ext(flag)))}")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"{flag} {p}: {parent} is a file, not a directory")
            break


def _ext(flag: str) -> str:
    exts = {"--json": ".json", "--csv": ".csv", "--markdown": ".md", "--plot": ".png", "--report": ".html"}
    return exts.get(flag, "")


def check_out_dir(path, flag: str = "--out") -> None:
    """An output folder option (``--out DIR``): a directory or a new path, never an existing file."""
    if path is None:
        return
    from pathlib import Path

    p = Path(path)
    if p.exists() and not p.is_dir():
        fail(f"{flag} {p}: exists and is a file; {flag} takes a directory")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"{flag} {p}: {parent} is a file, not a directory")
            break


def check_threads(n: int) -> None:
    """More threads than cores: a warning with the core count (it only adds contention)."""
    cores = os.cpu_count() or 1
    if n > cores:
        console.print(f"[yellow]warning:[/] --threads {n} is more than this machine's {cores} core(s); "
                      f"latency usually gets worse, not better", highlight=False, soft_wrap=True)


def deprecated(ctx, value, new: str, old: str):
    """A hidden old spelling: its value, with one note on stderr."""
    if value is not None and value is not False:
        console.print(f"[yellow]note:[/] {old} is deprecated, use {new}", highlight=False)
    return value


def say(s: str) -> None:
    """Progress lines of the library functions (their ``log``), on stderr."""
    console.print(s, highlight=False, soft_wrap=True)


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
