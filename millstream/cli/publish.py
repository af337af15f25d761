"""``millstream publish TOPIC``: JSON records from --value, a file, stdin, or the generator.

Input is validated completely before the first record is published, so a bad
line publishes nothing; the error names the line.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from millstream.cli.common import (
    BootstrapOption,
    cli_settings,
    console,
    err_console,
    fail,
    handles_errors,
)
from millstream.config import Settings
from millstream.errors import DeliveryError, SerializationError, TopicNotFoundError
from millstream.kafka import TopicAdmin, TopicSpec
from millstream.producers import ProducerRecord, PublishCounts, Publisher
from millstream.producers.generators import Transaction, TransactionGenerator


def parse_record(
    text: str, where: str, key_field: str | None, timestamp_field: str | None
) -> ProducerRecord:
    """One JSON record, with its key and timestamp taken from the named fields.

    Raises:
        SerializationError: invalid JSON, or a named field missing or of the wrong type;
            the message starts with ``where``.
    """
    try:
        value = orjson.loads(text.strip())
    except orjson.JSONDecodeError as exc:
        raise SerializationError(
            f"{where}: invalid JSON ({exc.msg} at column {exc.colno})"
        ) from None
    if (key_field or timestamp_field) and not isinstance(value, dict):
        raise SerializationError(f"{where}: expected a JSON object to take fields from")
    key = None if key_field is None else _field(value, key_field, where)
    timestamp = None
    if timestamp_field is not None:
        timestamp = _field(value, timestamp_field, where)
        if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
            raise SerializationError(
                f"{where}: field {timestamp_field!r} must be epoch milliseconds "
                f"(a non-negative integer), got {timestamp!r}"
            )
    if key is not None and not isinstance(key, str):
        key = orjson.dumps(key).decode()
    return ProducerRecord(value, key=key, timestamp=timestamp)


def _field(record: dict[str, Any], name: str, where: str) -> Any:
    try:
        return record[name]
    except KeyError:
        raise SerializationError(f"{where}: the record has no field {name!r}") from None


def parse_lines(
    lines: Iterable[str], source: str, key_field: str | None, timestamp_field: str | None
) -> list[ProducerRecord]:
    """Every non-blank line as a record (see :func:`parse_record`); line numbers count from 1."""
    return [
        parse_record(line, f"{source} line {number}", key_field, timestamp_field)
        for number, line in enumerate(lines, start=1)
        if line.strip()
    ]


def generated_records(
    count: int, seed: int, key_field: str | None, timestamp_field: str | None
) -> Iterator[ProducerRecord]:
    """``count`` synthetic transactions, keyed by card and stamped with their event time."""
    key_name = key_field or "card_id"
    time_name = timestamp_field or "timestamp"
    if key_name not in Transaction.__required_keys__:
        known = ", ".join(sorted(Transaction.__required_keys__))
        fail(f"generated transactions have no field {key_name!r} (fields: {known})")
    if time_name != "timestamp":
        fail("generated transactions carry their event time in the field 'timestamp'")
    transactions = itertools.islice(TransactionGenerator(seed), count)
    return (_keyed(tx, key_name, time_name) for tx in transactions)


def _keyed(tx: Transaction, key_name: str, time_name: str) -> ProducerRecord:
    fields: dict[str, Any] = dict(tx)
    return ProducerRecord(tx, key=fields[key_name], timestamp=fields[time_name])


def read_input(
    values: Sequence[str],
    file: Path | None,
    key_field: str | None,
    timestamp_field: str | None,
) -> list[ProducerRecord]:
    """Records from ``--value`` options, else ``--file``, else stdin (unless it is a terminal)."""
    if values:
        return [
            parse_record(v, f"--value #{n}", key_field, timestamp_field)
            for n, v in enumerate(values, start=1)
        ]
    if file is not None:
        try:
            with file.open(encoding="utf-8") as lines:
                return parse_lines(lines, str(file), key_field, timestamp_field)
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror or exc}")
        except UnicodeDecodeError as exc:
            fail(f"cannot read {file}: not UTF-8 text ({exc.reason})")
    stdin = typer.get_text_stream("stdin")
    if stdin.isatty():
        fail("no records: pass --value, --file or --generate, or pipe JSON lines to stdin")
    return parse_lines(stdin, "stdin", key_field, timestamp_field)


def ensure_topic(settings: Settings, topic: str, partitions: int | None) -> None:
    """Create ``topic`` when ``partitions`` is given and it is missing; else require it.

    Raises:
        TopicNotFoundError: the topic is missing and no partition count was given.
        AuthorizationError: the cluster's ACLs deny this user the topic.
        BrokerUnreachableError: the cluster did not answer.
    """
    admin = TopicAdmin(settings)
    if partitions is not None:
        admin.create([TopicSpec(topic, partitions)], if_missing=True)
    elif not admin.exists(topic):
        admin.check_access(topic)
        raise TopicNotFoundError(
            f"topic {topic!r} does not exist: pass --partitions N to create it, "
            f"or run `millstream topics create {topic} --partitions N`"
        )


def publish_with_progress(
    publisher: Publisher, topic: str, records: Iterable[ProducerRecord], total: int
) -> PublishCounts:
    """Publish ``records`` with a progress bar on stderr (when it is a terminal)."""
    progress = Progress(
        TextColumn("[bold]publishing"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task("publish", total=total)
        return publisher.publish_many(
            topic, records, on_progress=lambda done: progress.update(task, completed=done)
        )


@handles_errors
def publish(
    topic: Annotated[str, typer.Argument(help="Topic to publish to.")],
    value: Annotated[
        list[str] | None,
        typer.Option("--value", "-v", help="A JSON record (repeatable).", show_default=False),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A file of JSON lines.", dir_okay=False)
    ] = None,
    key_field: Annotated[
        str | None,
        typer.Option("--key-field", "-k", help="Take each record's key from this field."),
    ] = None,
    timestamp_field: Annotated[
        str | None,
        typer.Option(
            "--timestamp-field", "-t", help="Take each timestamp (epoch ms) from this field."
        ),
    ] = None,
    partitions: Annotated[
        int | None,
        typer.Option(
            "--partitions", "-p", min=1, help="Create the topic with N partitions if missing."
        ),
    ] = None,
    generate: Annotated[
        int | None,
        typer.Option("--generate", "-g", min=0, help="Publish N synthetic card transactions."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --generate.")] = 0,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Publish JSON records to TOPIC from --value, --file, --generate or stdin (one per line).

    Input is validated before anything is published. Exits 1 if any record failed.
    """
    sources = [bool(value), file is not None, generate is not None]
    if sum(sources) > 1:
        fail("pass only one of --value, --file and --generate")
    settings = cli_settings(bootstrap_servers)
    records: Iterable[ProducerRecord]
    if generate is not None:
        total = generate
        records = generated_records(generate, seed, key_field, timestamp_field)
    else:
        records = read_input(value or [], file, key_field, timestamp_field)
        total = len(records)
    ensure_topic(settings, topic, partitions)
    publish_and_report(settings, topic, records, total)


def publish_and_report(
    settings: Settings, topic: str, records: Iterable[ProducerRecord], total: int
) -> None:
    """Publish, then print the count and rate.

    Raises:
        DeliveryError: some records failed; the message says how many were published.
    """
    started = time.monotonic()
    with Publisher(settings=settings, client_id="millstream-cli") as publisher:
        counts = publish_with_progress(publisher, topic, records, total)
        if counts.failed:
            raise DeliveryError(
                f"published {counts.delivered} of {total} records to {topic!r}; "
                f"{counts.failed} failed, first: {counts.first_error}"
            )
    elapsed = time.monotonic() - started
    rate = counts.delivered / elapsed if elapsed > 0 else 0.0
    console.print(
        f"published {counts.delivered} records to {topic} in {elapsed:.2f} s ({rate:,.0f} rec/s)",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )


def register(cli: typer.Typer) -> None:
    """Add ``millstream publish`` to the root CLI."""
    cli.command("publish")(publish)
