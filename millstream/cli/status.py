"""``millstream status APP`` and ``millstream reset APP --to ...``: an app's consumer
group seen from outside (state, members, committed and end offsets, lag, dead letters)
and resets of a stopped group's offsets.

The figures come from :mod:`millstream.groups`; this module only resolves APP and
renders. Results go to stdout, errors to stderr (exit 1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

import orjson
import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from millstream.cli.common import (
    BootstrapOption,
    cli_settings,
    console,
    err_console,
    error_message,
    handles_errors,
)
from millstream.config import Settings
from millstream.errors import MillstreamError
from millstream.groups import (
    GroupStatus,
    ResetChange,
    consumed_topics,
    parse_target,
    plan_reset,
    read_status,
    reset_offsets,
)
from millstream.loader import load_app

AppArgument = Annotated[
    str,
    typer.Argument(
        metavar="APP",
        help="The app: its id (the consumer group), or module:attribute naming its App "
        "(then its topics are known even before anything was committed).",
        show_default=False,
    ),
]

#: Seconds between readings of ``--watch`` without a number.
DEFAULT_WATCH = 2.0
#: How ``None`` (no committed offset, no known end, no lag) shows in tables.
MISSING = "-"


@dataclass(frozen=True)
class Target:
    """The group an APP argument names, the settings to reach it, and the topics the app
    consumes with their kinds (None for a bare app id)."""

    group: str
    settings: Settings
    topics: dict[str, str] | None


def resolve(app: str, bootstrap_servers: str | None) -> Target:
    """The group of APP: an app id as it is, or ``module:attr`` loaded for its id and topics.

    Raises:
        ConfigurationError: ``module:attr`` does not load an App, or a setting is invalid.
    """
    if ":" not in app:
        return Target(app, cli_settings(bootstrap_servers), None)
    loaded = load_app(app)
    settings = loaded.settings if bootstrap_servers is None else cli_settings(bootstrap_servers)
    return Target(loaded.app_id, settings, consumed_topics(loaded.topology))


def status_command(
    ctx: typer.Context,
    app: AppArgument,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print JSON (one object per reading) instead of tables."),
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            metavar="[SECONDS]",
            help="Read again every SECONDS (a number after --watch; 2 when none given) "
            "until Ctrl-C.",
        ),
    ] = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Show APP's consumer group: state, protocol, members, and per partition the
    committed offset, end offset and lag of every topic it consumes; and its dead letters.

    Lag is end offset minus committed offset, as kafka-consumer-groups computes it;
    "-" (null in JSON) where nothing was committed yet.

    Exits 1 if the group does not exist or the cluster does not answer.
    """
    app, seconds = watch_arguments(app, list(ctx.args), watch)
    target = resolve(app, bootstrap_servers)
    if seconds is None:
        status = read_status(target.settings, target.group, target.topics)
        _print_status(status, as_json)
        return
    try:
        _watch(target, seconds, as_json)
    except KeyboardInterrupt:
        return


def watch_arguments(app: str, extra: list[str], watch: bool) -> tuple[str, float | None]:
    """APP and the refresh interval from the command line: ``--watch`` takes an optional
    number of seconds, which the parser leaves among the extra arguments (before or after
    APP). Returns (APP, None) without ``--watch``.

    Raises:
        typer.BadParameter: an extra argument that is not the interval, or an interval
            below 0.1 s.
    """
    if not watch:
        if extra:
            raise typer.BadParameter(f"unexpected argument {extra[0]!r}")
        return app, None
    if not extra:
        return app, DEFAULT_WATCH
    if len(extra) == 1 and _is_number(app) and not _is_number(extra[0]):
        app, extra = extra[0], [app]  # `--watch 5 APP`: the parser took 5 for APP
    if len(extra) > 1 or not _is_number(extra[0]):
        raise typer.BadParameter(f"unexpected argument {extra[0]!r}", param_hint="--watch")
    seconds = float(extra[0])
    if seconds < 0.1:
        raise typer.BadParameter("must be at least 0.1 seconds", param_hint="--watch")
    return app, seconds


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _print_status(status: GroupStatus, as_json: bool) -> None:
    if as_json:
        typer.echo(orjson.dumps(status.as_json()).decode())
    else:
        console.print(render_status(status))


def _watch(target: Target, seconds: float, as_json: bool) -> None:
    """Read every ``seconds`` until Ctrl-C. The first reading's error ends the command (a
    mistyped app id, say); later ones are shown, and the next reading tries again."""
    status = read_status(target.settings, target.group, target.topics)
    if as_json or not console.is_terminal:
        # Not a screen to redraw: one reading after the other.
        while True:
            _print_status(status, as_json)
            time.sleep(seconds)
            status = _read_again(target, status)
    with Live(render_status(status), console=console, auto_refresh=False) as live:
        while True:
            stamp = time.strftime("%H:%M:%S")
            note = Text(f"read at {stamp}; every {seconds:g}s, Ctrl-C stops")
            live.update(Group(render_status(status), note), refresh=True)
            time.sleep(seconds)
            status = _read_again(target, status)


def _read_again(target: Target, last: GroupStatus) -> GroupStatus:
    """A new reading; on failure the error on stderr and the last reading again."""
    try:
        return read_status(target.settings, target.group, target.topics)
    except MillstreamError as exc:
        err_console.print(f"[bold red]error:[/] {escape(error_message(exc))} (trying again)")
        return last


def cell(value: int | None) -> str:
    """A table cell for an offset or a lag: the number, or ``-`` when there is none."""
    return MISSING if value is None else str(value)


def render_status(status: GroupStatus) -> RenderableType:
    """The status as rich renderables: a summary line, members, partitions, dead letters."""
    summary = Text.assemble(
        ("group ", "dim"),
        (status.group, "bold"),
        f"  state {status.state}  protocol {status.protocol}",
        f"  assignor {status.assignor or MISSING}  members {len(status.members)}",
        "  total lag ",
        (str(status.total_lag), "bold"),
    )
    parts: list[RenderableType] = [summary, _members_table(status), _partitions_table(status)]
    if status.missing_topics:
        missing = ", ".join(status.missing_topics)
        parts.append(Text(f"topics that do not exist: {missing}", style="yellow"))
    if status.restores:
        parts.append(_restores_table(status))
    dlq = status.dlq
    held = "topic does not exist" if dlq.records is None else f"{dlq.records} records"
    parts.append(Text(f"dead letters: {dlq.topic}: {held}"))
    return Group(*parts)


def _restores_table(status: GroupStatus) -> Table:
    table = Table("Changelog", "Partition", "Restored", "Of", "Done", title="restores")
    table.columns[0].overflow = "fold"
    table.add_column("By")
    table.add_column("Reported")
    now = time.time() * 1000
    for r in status.restores:
        table.add_row(
            Text(r.changelog),
            str(r.partition),
            str(r.position - r.start),
            str(r.target - r.start),
            f"{r.fraction:.0%}",
            Text(f"{r.host} pid {r.pid}"),
            reported(r.reported_at, now),
        )
    return table


def reported(at_ms: int, now_ms: float) -> str:
    """When a report came: seconds ago within the hour, else its UTC time."""
    age = max(0.0, (now_ms - at_ms) / 1000)
    if age < 3600:
        return f"{age:.0f}s ago"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at_ms / 1000))


def _members_table(status: GroupStatus) -> RenderableType:
    if not status.members:
        return Text("no live members", style="dim")
    table = Table("Client id", "Host", "Partitions", "Taking (restoring)", title="members")
    table.add_column("Member id", overflow="fold")
    for member in sorted(status.members, key=lambda m: (m.client_id, m.member_id)):
        table.add_row(
            Text(member.client_id),
            Text(member.host),
            Text(partition_list(member.partitions)),
            Text(partition_list(member.pending)),
            Text(member.member_id),
        )
    return table


def partition_list(partitions: list[tuple[str, int]]) -> str:
    """``topic: 0,1,2`` per topic, one topic a line; ``-`` for none."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    lines = [f"{t}: {','.join(str(p) for p in sorted(ps))}" for t, ps in sorted(by_topic.items())]
    return "\n".join(lines) or MISSING


def _partitions_table(status: GroupStatus) -> Table:
    table = Table("Topic", "Kind", "Partition", title="partitions")
    table.columns[0].overflow = "fold"
    for header in ("Committed", "End", "Lag"):
        table.add_column(header, justify="right")
    table.add_column("Owner")
    for p in status.partitions:
        owner = status.owner((p.topic, p.partition))
        table.add_row(
            Text(p.topic),
            status.topics.get(p.topic, MISSING),
            str(p.partition),
            cell(p.committed),
            cell(p.end),
            cell(p.lag),
            Text(owner.client_id if owner else MISSING),
        )
    return table


def reset_command(
    app: AppArgument,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="earliest|latest|TIMESTAMP",
            help="Where to: the start, the end, or the first record at or after TIMESTAMP "
            "(ISO-8601, UTC unless it says otherwise, or epoch milliseconds).",
            show_default=False,
        ),
    ],
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            "-t",
            help="Only this topic (repeatable); default every one the group consumes.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Reset the committed offsets of APP's stopped group, and print old -> new per partition.

    Refuses (exit 1) while the group has live members: stop its workers first.
    """
    try:
        where = parse_target(to)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--to") from None
    target = resolve(app, bootstrap_servers)
    consumed = list(target.topics) if target.topics is not None else None
    changes = plan_reset(target.settings, target.group, where, topic, consumed)
    console.print(_changes_table(target.group, changes, dry_run))
    if dry_run:
        console.print(
            f"dry run: {len(changes)} partitions would change; nothing changed", soft_wrap=True
        )
        return
    reset_offsets(target.settings, target.group, changes)
    done = f"reset {len(changes)} partitions of group {target.group} to {to}"
    console.print(done, markup=False, soft_wrap=True)


def _changes_table(group: str, changes: list[ResetChange], dry_run: bool) -> Table:
    title = f"{'would reset' if dry_run else 'reset'} group {group}"
    table = Table("Topic", "Partition", title=title)
    for header in ("Old", "New", "Moved"):
        table.add_column(header, justify="right")
    for c in changes:
        moved = MISSING if c.old is None else f"{c.new - c.old:+d}"
        table.add_row(Text(c.topic), str(c.partition), cell(c.old), str(c.new), moved)
    return table


def register(cli: typer.Typer) -> None:
    """Add ``millstream status`` and ``millstream reset`` to the root CLI."""
    extra = {"allow_extra_args": True, "ignore_unknown_options": False}
    cli.command("status", context_settings=extra)(handles_errors(status_command))
    cli.command("reset")(handles_errors(reset_command))
