"""``millstream dlq list|show|replay|purge APP``: look into an app's dead letters, send
the tasks among them back to run again, and clear the topic.

The dead letters are the records of ``{app_id}-dlq`` (docs/tasks.md lists their
headers); every command works on what the topic held when it started and never waits
for more. Records go to stdout, progress and errors to stderr.
"""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Annotated

import orjson
import typer
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from millstream.cli.common import BootstrapOption, cli_settings, console, fail, handles_errors
from millstream.cli.dead_letters import (
    DeadLetter,
    DeadLetterFilter,
    DeadLetterTopic,
    Position,
    ReplayPlan,
    parse_where,
    replay,
)
from millstream.kafka import TopicAdmin
from millstream.loader import load_app
from millstream.processors.tasks.envelope import HEADER_TRACEBACK

dlq = typer.Typer(
    name="dlq",
    help=(
        "Dead letters of an app ({app_id}-dlq): list them, show one in full, replay the "
        "tasks among them, purge the topic."
    ),
    no_args_is_help=True,
)

AppArgument = Annotated[
    str,
    typer.Argument(
        metavar="APP",
        help="The app: its id (shop: dead letters in shop-dlq), or module:attribute naming "
        "its App.",
        show_default=False,
    ),
]
TaskOption = Annotated[
    str | None,
    typer.Option("--task", "-t", help="Only dead letters of this task name.", show_default=False),
]
ErrorTypeOption = Annotated[
    str | None,
    typer.Option(
        "--error-type",
        "-e",
        help="Only dead letters of this exception class: module.QualName, or just the class "
        "name (ValueError matches builtins.ValueError).",
        show_default=False,
    ),
]

#: Characters of ``millstream.error`` a list row shows; ``show`` prints all of it.
_ERROR_WIDTH = 60


def dead_letter_topic(app: str, bootstrap_servers: str | None) -> DeadLetterTopic:
    """The dead-letter topic of APP: an app id, or ``module:attr`` naming an App, whose
    settings reach the cluster unless ``--bootstrap-servers`` says otherwise.

    Raises:
        ConfigurationError: ``module:attr`` does not load an App, or a setting is invalid.
    """
    if ":" not in app:
        return DeadLetterTopic(cli_settings(bootstrap_servers), app)
    loaded = load_app(app)
    settings = loaded.settings if bootstrap_servers is None else cli_settings(bootstrap_servers)
    return DeadLetterTopic(settings, loaded.app_id)


def shortened(text: str | None, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis; None as ``-``."""
    if text is None:
        return "-"
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def utc_time(timestamp: int | None) -> str:
    if timestamp is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(timestamp / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@dlq.command("list")
@handles_errors
def list_dead_letters(
    app: AppArgument,
    task: TaskOption = None,
    error_type: ErrorTypeOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows to show at most.")] = 100,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """List the dead letters of APP, one row each, in offset order per partition.

    Reads {app_id}-dlq from its start to the end it had when the command started.

    Task is "-" for a stream's dead letter. `dlq show` prints one in full.

    Exits 1 if the topic does not exist.
    """
    topic = dead_letter_topic(app, bootstrap_servers)
    chosen = DeadLetterFilter(task, error_type)
    table = _list_table(topic.name)
    total = matched = 0
    for dead_letter in topic.read():
        total += 1
        if chosen.matches(dead_letter):
            matched += 1
            if matched <= limit:
                table.add_row(*_list_row(dead_letter))
    if total == 0:
        console.print(f"{topic.name} is empty: no dead letters", markup=False, highlight=False)
        return
    if matched:
        console.print(table)
    console.print(_count_line(topic.name, total, matched, limit, chosen), markup=False)


def _list_table(name: str) -> Table:
    table = Table(title=name)
    for header in ("Partition", "Offset", "Time (UTC)", "Task", "Task id", "Attempts"):
        table.add_column(header, overflow="fold")
    for header in ("Error type", "Error"):
        table.add_column(header, overflow="fold", ratio=1)
    return table


def _list_row(dead_letter: DeadLetter) -> list[Text]:
    cells = [
        str(dead_letter.position.partition),
        str(dead_letter.position.offset),
        utc_time(dead_letter.timestamp),
        dead_letter.task_name or "-",
        dead_letter.task_id or "-",
        dead_letter.header("millstream.task.attempts") or "-",
        dead_letter.error_type or "-",
        shortened(dead_letter.error, _ERROR_WIDTH),
    ]
    return [Text(cell) for cell in cells]


def _count_line(name: str, total: int, matched: int, limit: int, chosen: DeadLetterFilter) -> str:
    if chosen == DeadLetterFilter():
        line = f"{total} dead letters in {name}"
    else:
        line = f"{matched} of {total} dead letters in {name} match"
    return line + (f"; the first {limit} shown (--limit)" if matched > limit else "")


@dlq.command("show")
@handles_errors
def show(
    app: AppArgument,
    where: Annotated[
        str,
        typer.Argument(
            metavar="WHERE",
            help="PARTITION:OFFSET of a dead letter (as `dlq list` shows), or a task id "
            "(every dead letter of that task is shown).",
            show_default=False,
        ),
    ],
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Show a dead letter in full: headers, key, value and traceback.

    Every header is listed; the value is printed as indented JSON when it is JSON.

    Exits 1 if there is no such dead letter.
    """
    try:
        target = parse_where(where)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="WHERE") from None
    topic = dead_letter_topic(app, bootstrap_servers)
    if isinstance(target, Position):
        found = [topic.read_at(target)]
    else:
        found = [dead_letter for dead_letter in topic.read() if dead_letter.task_id == target]
        if not found:
            fail(f"no dead letter of task id {target!r} in {topic.name}")
    for dead_letter in found:
        _print_dead_letter(topic.name, dead_letter)


def _print_dead_letter(name: str, dead_letter: DeadLetter) -> None:
    title = f"{name} {dead_letter.position}  {utc_time(dead_letter.timestamp)} UTC"
    console.print(Rule(Text(title), align="left"))
    headers = Table("Header", "Value", title="headers", title_justify="left")
    headers.columns[1].overflow = "fold"
    for key, value in dead_letter.headers:
        text = "(none)" if value is None else value.decode("utf-8", errors="replace")
        if key == HEADER_TRACEBACK:
            text = "(below)"
        headers.add_row(Text(key), Text(text))
    console.print(headers)
    console.print(Text("key: ") + Text(_readable(dead_letter.key)))
    console.print(Text("value:"))
    console.print(Text(_readable(dead_letter.value, pretty_json=True)))
    traceback = dead_letter.header(HEADER_TRACEBACK)
    if traceback is not None:
        console.print(Text("traceback:"))
        console.print(Text(traceback))


def _readable(data: bytes | None, *, pretty_json: bool = False) -> str:
    """``data`` as indented JSON (when asked and it parses), UTF-8 text, or a bytes repr."""
    if data is None:
        return "(none)"
    if pretty_json:
        try:
            return orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)


@dlq.command("replay")
@handles_errors
def replay_dead_letters(
    app: AppArgument,
    task: TaskOption = None,
    error_type: ErrorTypeOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be replayed; produce nothing.")
    ] = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Send the task dead letters of APP back to their task topics, to run again.

    Each goes to its millstream.source.topic with its key and value, and attempts 0.

    Its error and source headers are dropped; millstream.task.replay is its offset + 1.

    Stream dead letters are skipped. The dead letters stay: `dlq purge` removes them.

    Exits 1 if any record was not delivered.
    """
    topic = dead_letter_topic(app, bootstrap_servers)
    plan = ReplayPlan.of(topic.read(), DeadLetterFilter(task, error_type))
    _report_skipped(plan)
    if not plan.tasks:
        console.print(f"no task dead letters to replay in {topic.name}", markup=False)
        return
    missing = plan.source_topics() - set(TopicAdmin(topic.settings).list())
    if missing:
        fail(f"nothing replayed: source topics do not exist: {', '.join(sorted(missing))}")
    if dry_run:
        console.print(_plan_table(plan))
        console.print(
            f"would replay {len(plan.tasks)} task dead letters (dry run: nothing produced)",
            markup=False,
        )
        return
    delivered = replay(topic.settings, plan)
    _report_replayed(topic.name, delivered)


def _report_skipped(plan: ReplayPlan) -> None:
    if plan.streams_skipped:
        console.print(
            f"{plan.streams_skipped} stream dead letters skipped: replay works on tasks",
            markup=False,
        )
    if plan.unsourced:
        positions = ", ".join(str(p) for p in plan.unsourced)
        console.print(
            f"{len(plan.unsourced)} task dead letters skipped: no millstream.source.topic "
            f"header ({positions})",
            markup=False,
        )


def _plan_table(plan: ReplayPlan) -> Table:
    table = Table("Partition", "Offset", "Task", "Task id", title="would replay")
    table.add_column("Error type", overflow="fold")
    table.add_column("To topic", overflow="fold")
    for dead_letter in plan.tasks:
        cells = [
            str(dead_letter.position.partition),
            str(dead_letter.position.offset),
            dead_letter.task_name or "-",
            dead_letter.task_id or "-",
            dead_letter.error_type or "-",
            dead_letter.source_topic or "-",
        ]
        table.add_row(*(Text(cell) for cell in cells))
    return table


def _report_replayed(name: str, delivered: Counter[str]) -> None:
    table = Table("Task", "Replayed", title=f"replayed from {name}")
    for task_name, count in sorted(delivered.items()):
        table.add_row(Text(task_name), str(count))
    console.print(table)
    console.print(f"replayed {delivered.total()} task dead letters", markup=False)


@dlq.command("purge")
@handles_errors
def purge(
    app: AppArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Delete every dead letter of APP, up to the topic's current end.

    Asks first unless --yes. Dead letters that arrive meanwhile, and the topic, stay.
    """
    topic = dead_letter_topic(app, bootstrap_servers)
    marks = topic.watermarks()
    count = sum(high - low for low, high in marks.values())
    if count == 0:
        console.print(f"{topic.name} is empty: nothing to purge", markup=False)
        return
    question = f"Delete {count} dead letters from {topic.name}? They cannot be replayed after."
    if not yes and not typer.confirm(question):
        fail("nothing deleted")
    deleted = topic.purge(marks)
    table = Table("Partition", "Deleted", title=f"purged {topic.name}")
    for partition, records in sorted(deleted.items()):
        table.add_row(str(partition), str(records))
    console.print(table)
    console.print(f"deleted {sum(deleted.values())} records from {topic.name}", markup=False)


def register(cli: typer.Typer) -> None:
    """Add ``millstream dlq ...`` to the root CLI."""
    cli.add_typer(dlq)
