"""What every CLI command shares: the consoles, the connection option, and error handling.

Commands wrap themselves in :func:`handles_errors`, so a :class:`MillstreamError`
becomes one red line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from millstream.config import Settings, load_settings
from millstream.errors import MillstreamError

#: Results and tables.
console = Console()
#: Progress, warnings and errors, so stdout stays clean for results.
err_console = Console(stderr=True)

BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        "-b",
        help="Kafka brokers as host:port[,host:port]; default $MILLSTREAM_BOOTSTRAP_SERVERS.",
        show_default=False,
    ),
]

P = ParamSpec("P")
R = TypeVar("R")


def cli_settings(bootstrap_servers: str | None = None) -> Settings:
    """Settings from the environment, with the command line's ``--bootstrap-servers`` applied.

    Raises:
        ConfigurationError: a setting is invalid (the message names it).
    """
    return load_settings(bootstrap_servers=bootstrap_servers)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as one red error line on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def error_message(exc: BaseException) -> str:
    """The exception's message with its notes (added context) on the same line."""
    notes = getattr(exc, "__notes__", ())
    return " ".join([str(exc), *(f"({note})" for note in notes)])


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: MillstreamError -> one red line and exit 1; Ctrl-C -> exit 130."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except MillstreamError as exc:
            fail(error_message(exc))
        except KeyboardInterrupt:
            fail("interrupted", code=130)

    return run
