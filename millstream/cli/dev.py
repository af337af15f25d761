"""`millstream dev`: the local Kafka development cluster (up, down, status, logs).

Progress goes to stderr, so the last line ``dev up`` writes to stdout is the
bootstrap servers string (``BOOTSTRAP=$(millstream dev up | tail -n1)``). Errors
are one red line on stderr (details below it) and exit status 1, never a traceback.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from millstream.config import load_settings
from millstream.dev import ClusterStatus, LocalCluster
from millstream.dev.assembly import Progress
from millstream.dev.security import DEFAULT_APP_ID, Credentials
from millstream.errors import MillstreamError

dev = typer.Typer(
    name="dev",
    help="The local Kafka development cluster (KRaft, on 127.0.0.1, data under .local/).",
    no_args_is_help=True,
)
_stderr = Console(stderr=True, highlight=False)
_stdout = Console(highlight=False)


def register(cli: typer.Typer) -> None:
    """Add the ``dev`` command group to the root CLI."""
    cli.add_typer(dev, name="dev")


@contextmanager
def _handled() -> Iterator[None]:
    """Turn millstream errors into a red message on stderr and exit status 1."""
    try:
        yield
    except MillstreamError as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    """Print ``message`` (its first line in red, the rest dimmed) to stderr and exit 1."""
    first, _, details = message.partition("\n")
    _stderr.print(f"[bold red]error:[/] [red]{escape(first)}[/]", soft_wrap=True)
    if details:
        _stderr.print(escape(details), style="dim", soft_wrap=True)
    raise typer.Exit(1)


@contextmanager
def _progress(title: str) -> Iterator[Progress]:
    """A spinner on stderr; the yielded callback shows each step and keeps it on screen."""
    with _stderr.status(title) as status:

        def report(message: str) -> None:
            _stderr.print(f"[dim]- {escape(message)}[/]", soft_wrap=True)
            status.update(escape(message))

        yield report


def _cluster(progress: Progress | None = None) -> LocalCluster:
    return LocalCluster(load_settings(), progress=progress)


@dev.command()
def up(
    nodes: Annotated[
        int | None,
        typer.Option(
            "--nodes",
            "-n",
            help="Broker+controller nodes: 1 or 3 [default: as before, 1 for a new cluster].",
            show_default=False,
        ),
    ] = None,
    security: Annotated[
        str | None,
        typer.Option(
            "--security",
            help="plaintext, or sasl_ssl: TLS with a generated CA, SCRAM-SHA-512 users and "
            "ACLs (a new cluster only) [default: as the cluster was, plaintext when new].",
            show_default=False,
        ),
    ] = None,
    app_id: Annotated[
        str | None,
        typer.Option(
            "--app-id",
            help="With --security sasl_ssl: the app user's name and the prefix of the "
            f"topics, groups and transactional ids it may use [default: {DEFAULT_APP_ID}].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the local cluster (idempotent) and print its bootstrap servers last.

    A secured cluster's users, passwords and CA are printed too (to stderr) and kept
    in ``<local_dir>/kafka/security/``: ``app.env`` holds the app user's MILLSTREAM_*
    variables.
    """
    with _handled(), _progress("starting the local Kafka cluster") as report:
        cluster = _cluster(report)
        bootstrap = cluster.up(nodes, security=security, app_id=app_id)
        credentials = cluster.credentials()
    if credentials is not None:
        _print_credentials(
            credentials, cluster.security.credentials_file, cluster.security.env_file
        )
    _stdout.print(bootstrap, markup=False, soft_wrap=True)


def _print_credentials(credentials: Credentials, stored: Path, env: Path) -> None:
    """Show how to connect to a secured cluster (on stderr: stdout ends with the bootstrap)."""
    _stderr.print(
        "\n".join(
            [
                "SASL_SSL with SCRAM-SHA-512; clients trust the CA "
                f"{escape(credentials.ca_location)}",
                f"  super user: {credentials.super_user} / {credentials.super_password}",
                f"  app user:   {credentials.app_user} / {credentials.app_password} "
                f"(topics, groups, transactional ids starting with {credentials.app_id!r})",
                f"  stored in {escape(str(stored))}; connect as the app user with "
                f"`set -a; . {escape(str(env))}; set +a`",
            ]
        ),
        soft_wrap=True,
        highlight=False,
    )


@dev.command()
def down(
    wipe: Annotated[
        bool, typer.Option("--wipe", help="Also delete the cluster's data and logs.")
    ] = False,
) -> None:
    """Stop the local cluster's nodes; keeps their data unless --wipe."""
    with _handled(), _progress("stopping the local Kafka cluster") as report:
        stopped = _cluster(report).down(wipe=wipe)
    _stderr.print(
        f"stopped node(s) {', '.join(map(str, stopped))}"
        if stopped
        else "no local node was running"
    )


@dev.command()
def status(
    bootstrap: Annotated[
        bool,
        typer.Option(
            "--bootstrap", help="Print only the bootstrap servers; exit 1 if not running."
        ),
    ] = False,
) -> None:
    """Show the local cluster's nodes, pids, ports and whether they are alive."""
    with _handled():
        state = _cluster().status()
        if bootstrap:
            if not state.running:
                _fail(
                    f"no local cluster is running in {state.directory}; "
                    "start it with `millstream dev up`"
                )
            _stdout.print(state.bootstrap_servers, markup=False, soft_wrap=True)
            return
        _print_status(state)


@dev.command()
def logs(
    node: Annotated[int, typer.Option("--node", "-n", help="Node whose log to show.")] = 1,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", help="Lines to show from the end.")] = 100,
) -> None:
    """Show the server.log of a node (Ctrl-C stops --follow)."""
    with _handled():
        path = _cluster().log_path(node)
    if not path.exists():
        _fail(f"{path} does not exist yet: node {node} has not run")
    _print_log(path, lines, follow)


@dev.command("stop-node")
def stop_node(
    node: Annotated[int, typer.Argument(help="Node id (1-based).")],
    kill: Annotated[bool, typer.Option("--kill", help="SIGKILL instead of a clean stop.")] = False,
) -> None:
    """Stop one node of the running cluster, keeping its data (for failure tests)."""
    with _handled(), _progress(f"stopping node {node}") as report:
        was_running = _cluster(report).stop_node(node, kill=kill)
    _stderr.print(f"node {node} stopped" if was_running else f"node {node} was not running")


@dev.command("start-node")
def start_node(node: Annotated[int, typer.Argument(help="Node id (1-based).")]) -> None:
    """Start one stopped node again and wait until the cluster serves with it."""
    with _handled(), _progress(f"starting node {node}") as report:
        cluster = _cluster(report)
        cluster.start_node(node)
    _stdout.print(cluster.bootstrap_servers, markup=False, soft_wrap=True)


def _print_status(state: ClusterStatus) -> None:
    if not state.nodes:
        _stderr.print(f"no local cluster in {state.directory} (start one with `millstream dev up`)")
        return
    table = Table(
        title=f"local Kafka {state.kafka_version or ''} cluster",
        caption=f"bootstrap {state.bootstrap_servers}  ·  {state.directory}",
    )
    for column in ("node", "pid", "broker", "controller", "state", "log"):
        if column == "log":
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, justify="right", no_wrap=True)
    for node in state.nodes:
        table.add_row(
            str(node.node),
            str(node.pid) if node.pid is not None else "-",
            str(node.broker_port),
            str(node.controller_port),
            "[green]alive[/]" if node.alive else "[red]stopped[/]",
            escape(str(node.log_path)),
        )
    _stdout.print(table)


def _print_log(path: Path, lines: int, follow: bool) -> None:
    handle = path.open("r", encoding="utf-8", errors="replace")
    try:
        sys.stdout.writelines(deque(handle, maxlen=lines) if lines > 0 else [])
        sys.stdout.flush()
        while follow:
            chunk = handle.read()
            if chunk:
                sys.stdout.write(chunk)
                sys.stdout.flush()
            elif path.exists() and path.stat().st_ino != os.fstat(handle.fileno()).st_ino:
                handle.close()  # log4j rolled the file over: continue with the new one
                handle = path.open("r", encoding="utf-8", errors="replace")
            else:
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        handle.close()
