"""``millstream worker MODULE:ATTR``: run an app's workers."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from millstream.errors import MillstreamError
from millstream.loader import load_app
from millstream.logs import LogFormat, configure_logging
from millstream.processors.supervisor import run_processes

log = logging.getLogger("millstream.cli")


def worker(
    target: str = typer.Argument(..., help="The app to run, as module:attribute."),
    processes: int = typer.Option(1, "--processes", "-p", min=1, help="Worker processes to run."),
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="text or json (one object a line); default MILLSTREAM_LOG_FORMAT, else text.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run workers of an app; each process is one consumer in the app's group.

    Stops cleanly on SIGTERM or Ctrl-C: the current batch is finished and
    checkpointed before the worker leaves the group.
    """
    if log_format is not None and log_format not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--log-format")
    chosen: LogFormat = "text"
    try:
        app = load_app(target)
        chosen = "json" if (log_format or app.settings.log_format) == "json" else "text"
        configure_logging(app.settings.log_level, chosen, app.app_id)
        if processes > 1:
            raise typer.Exit(run_processes(target, processes, ["--log-format", chosen]))
        stats = app.run()
    except MillstreamError as exc:
        if chosen == "json":
            log.error("%s", exc, extra={"error": type(exc).__name__})
        else:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except typer.Exit:
        raise
    except Exception:
        if chosen != "json":
            raise
        # One JSON line with the traceback, rather than a traceback across many lines.
        log.exception("the worker failed")
        raise typer.Exit(1) from None
    summary = (
        f"worker done: {stats.records_in} records in, {stats.records_out} out, "
        f"{stats.dead_letters} dead letters"
    )
    if chosen == "json":
        log.info(summary)
    else:
        typer.echo(summary, err=True)


def register(cli: typer.Typer) -> None:
    """Add ``millstream worker`` to the root CLI."""
    cli.command()(worker)
