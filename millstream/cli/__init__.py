"""The ``millstream`` command line: dev cluster, topics, publish, worker."""

from __future__ import annotations

import typer

from millstream.cli import dashboard, dev, dlq, publish, status, topics, worker

cli = typer.Typer(
    name="millstream",
    help="Stream processing and a task queue for Python on Apache Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@cli.callback()
def root() -> None:
    """Stream processing and a task queue for Python on Apache Kafka."""


dev.register(cli)
topics.register(cli)
publish.register(cli)
worker.register(cli)
dlq.register(cli)
status.register(cli)
dashboard.register(cli)


def main() -> None:
    """Console-script entry point."""
    cli()
