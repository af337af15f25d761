"""``millstream worker MODULE:ATTR``: run an app's workers."""

from __future__ import annotations

import logging
import sys

import typer

from millstream.errors import MillstreamError
from millstream.loader import load_app
from millstream.processors.supervisor import run_processes


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s",
    )


def worker(
    target: str = typer.Argument(..., help="The app to run, as module:attribute."),
    processes: int = typer.Option(1, "--processes", "-p", min=1, help="Worker processes to run."),
) -> None:
    """Run workers of an app; each process is one consumer in the app's group.

    Stops cleanly on SIGTERM or Ctrl-C: the current batch is finished and
    checkpointed before the worker leaves the group.
    """
    try:
        app = load_app(target)
        configure_logging(app.settings.log_level)
        if processes > 1:
            raise typer.Exit(run_processes(target, processes))
        stats = app.run()
    except MillstreamError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"worker done: {stats.records_in} records in, {stats.records_out} out, "
        f"{stats.dead_letters} dead letters",
        err=True,
    )


def register(cli: typer.Typer) -> None:
    """Add ``millstream worker`` to the root CLI."""
    cli.command()(worker)
