"""``millstream dashboard MODULE:ATTR``: serve an app's live dashboard in the browser."""

from __future__ import annotations

import typer

from millstream.errors import ConfigurationError, MillstreamError
from millstream.loader import load_app_module
from millstream.logs import LogFormat, configure_logging


def dashboard(
    target: str = typer.Argument(..., help="The app to watch, as module:attribute."),
    port: int = typer.Option(8050, "--port", min=0, max=65535, help="Port to serve on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    metrics: list[str] = typer.Option(  # noqa: B008 (typer declares options this way)
        [],
        "--metrics",
        help="A worker's /metrics URL (repeatable); default: scan the local ports from "
        "MILLSTREAM_METRICS_PORT on.",
    ),
    interval: float = typer.Option(1.0, "--interval", min=0.2, help="Seconds between refreshes."),
) -> None:
    """Serve a live web page of an app: throughput, lag per partition, the group's
    workers and the app's own panels. Reads Kafka and the workers' /metrics only.
    """
    try:
        module, app = load_app_module(target)
        log_format: LogFormat = "json" if app.settings.log_format == "json" else "text"
        configure_logging(app.settings.log_level, log_format, app.app_id)
        try:
            from millstream.dashboard.server import bind, serve
        except ImportError as exc:
            raise ConfigurationError(
                "dashboard",
                f"needs starlette and uvicorn: pip install 'millstream[dashboard]' ({exc})",
            ) from exc
        from millstream.dashboard.service import DashboardService

        service = DashboardService.for_app(app, module, metrics)
        sock = bind(host, port)
        where = sock.getsockname()
        typer.echo(f"dashboard of {app.app_id!r} on http://{where[0]}:{where[1]}/", err=True)
        serve(service, sock, interval)
    except MillstreamError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


def register(cli: typer.Typer) -> None:
    """Add ``millstream dashboard`` to the root CLI."""
    cli.command()(dashboard)
