"""Dead letters as ``millstream dlq`` sees them: an app's ``{app_id}-dlq`` read up to
its end, the records a filter chooses, and a task's dead letter rewritten into the
record that replays it.

Workers keep appending to the dead-letter topic, so every read here stops at the end
offsets taken when it started: a command lists, replays or purges what was there when
it ran and never waits for more. The consumer reads committed records only, and its
end offsets are the last stable ones, so a transaction a worker has open holds no read
up. The headers are those of docs/tasks.md (tasks) and processors/dead_letters.py
(streams); a dead letter without ``millstream.task.name`` is a stream's.
"""

from __future__ import annotations

import functools
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import cast

from millstream.config import Settings
from millstream.errors import BrokerUnreachableError, DeliveryError, KafkaError, TopicNotFoundError
from millstream.kafka import (
    ConsumedRecord,
    Consumer,
    Message,
    TopicAdmin,
    TopicPartition,
    from_client_error,
    from_exception,
    make_consumer,
)
from millstream.processors.dead_letters import HEADER_ERROR, HEADER_ERROR_TYPE, HEADER_TOPIC
from millstream.processors.tasks.envelope import (
    HEADER_ATTEMPTS,
    HEADER_ID,
    HEADER_NAME,
    HEADER_REPLAY,
    TASK_HEADERS,
)
from millstream.producers import Delivery, Headers, Publisher

#: Task headers a replayed record must not carry: with them a worker would take it for
#: a retry (attempts, first failure, due), an older replay generation, or a record of a
#: delay tier (topic); id and name travel in the value anyway.
_NOT_REPLAYED = TASK_HEADERS | {HEADER_ID, HEADER_NAME}
#: Why the task died and where it was consumed: true of the dead letter, not of the replay.
_NOT_REPLAYED_PREFIXES = ("millstream.error", "millstream.source.")

Header = tuple[str, bytes | None]

_POSITION = re.compile(r"^-?\d+:")

#: Seconds a replay waits for its records to be delivered: plenty for acks=all on a
#: cluster that answers, and short of librdkafka's 5-minute message timeout.
_FLUSH_TIMEOUT = 60.0


@dataclass(frozen=True)
class Position:
    """Where a record is in the dead-letter topic."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic, with its headers as Kafka holds them."""

    position: Position
    timestamp: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]

    @classmethod
    def of(cls, record: ConsumedRecord) -> DeadLetter:
        kind, stamp = record.timestamp()
        return cls(
            Position(record.partition(), record.offset()),
            stamp if kind and stamp >= 0 else None,
            record.key(),
            record.value(),
            tuple(record.headers() or ()),
        )

    def header(self, name: str) -> str | None:
        """Header ``name`` as text; of repeated headers the last one, which was added last."""
        for key, value in reversed(self.headers):
            if key == name:
                return None if value is None else value.decode("utf-8", errors="replace")
        return None

    @property
    def task_name(self) -> str | None:
        """The task's name; None for a stream's dead letter."""
        return self.header(HEADER_NAME)

    @property
    def task_id(self) -> str | None:
        return self.header(HEADER_ID)

    @property
    def error_type(self) -> str | None:
        return self.header(HEADER_ERROR_TYPE)

    @property
    def error(self) -> str | None:
        return self.header(HEADER_ERROR)

    @property
    def source_topic(self) -> str | None:
        return self.header(HEADER_TOPIC)


def error_type_matches(error_type: str | None, wanted: str) -> bool:
    """Whether ``error_type`` (``module.QualName``) is ``wanted``, given in full or as its
    trailing names: ``ValueError`` and ``builtins.ValueError`` match ``builtins.ValueError``,
    ``Error`` does not."""
    if error_type is None:
        return False
    return error_type == wanted or error_type.endswith("." + wanted)


@dataclass(frozen=True)
class DeadLetterFilter:
    """The dead letters a command works on; None matches everything."""

    task: str | None = None
    error_type: str | None = None

    def matches(self, dead_letter: DeadLetter) -> bool:
        if self.task is not None and dead_letter.task_name != self.task:
            return False
        return self.error_type is None or error_type_matches(
            dead_letter.error_type, self.error_type
        )


def parse_where(where: str) -> Position | str:
    """``PARTITION:OFFSET`` as a Position; anything else is a task id.

    Text that starts with a number and a colon is always a position.

    Raises:
        ValueError: empty, or a position with a negative partition or an offset that is
            not a non-negative integer; the message says what is wrong.
    """
    text = where.strip()
    if not text:
        raise ValueError("empty: give PARTITION:OFFSET (e.g. 0:42) or a task id")
    if not _POSITION.match(text):
        return text
    partition_text, _, offset_text = text.partition(":")
    partition = int(partition_text)
    if partition < 0:
        raise ValueError(f"{where!r}: partition {partition} is negative")
    if not offset_text.isdigit():
        raise ValueError(
            f"{where!r}: offset {offset_text!r} is not a non-negative integer "
            "(give PARTITION:OFFSET, e.g. 0:42)"
        )
    return Position(partition, int(offset_text))


def replay_headers(headers: Iterable[Header], dead_letter_offset: int) -> list[Header]:
    """The headers of the record that replays a task's dead letter (docs/tasks.md): its own
    without the error, source and per-run task headers, then attempts 0 and the replay
    generation, the dead letter's offset + 1."""
    kept = [
        (name, value)
        for name, value in headers
        if name not in _NOT_REPLAYED and not name.startswith(_NOT_REPLAYED_PREFIXES)
    ]
    return [
        *kept,
        (HEADER_ATTEMPTS, b"0"),
        (HEADER_REPLAY, str(dead_letter_offset + 1).encode()),
    ]


@dataclass
class ReplayPlan:
    """What ``dlq replay`` does with the dead letters a filter chose: the task dead letters
    it produces again, and what it leaves (stream dead letters, which have no task to run
    again, and task dead letters that do not say where they came from)."""

    tasks: list[DeadLetter] = field(default_factory=list)
    streams_skipped: int = 0
    unsourced: list[Position] = field(default_factory=list)

    @classmethod
    def of(cls, dead_letters: Iterable[DeadLetter], chosen: DeadLetterFilter) -> ReplayPlan:
        plan = cls()
        for dead_letter in dead_letters:
            if not chosen.matches(dead_letter):
                continue
            if dead_letter.task_name is None:
                plan.streams_skipped += 1
            elif not dead_letter.source_topic:
                plan.unsourced.append(dead_letter.position)
            else:
                plan.tasks.append(dead_letter)
        return plan

    def source_topics(self) -> set[str]:
        return {dead_letter.source_topic or "" for dead_letter in self.tasks}


def replay(settings: Settings, plan: ReplayPlan) -> Counter[str]:
    """Publish each task dead letter of ``plan`` to its source topic with its key, its
    value and :func:`replay_headers`; returns the count delivered per task name.

    Blocks until every record is delivered (idempotent, acks=all) or failed.

    Raises:
        DeliveryError: some record was not delivered, or not within a minute.
    """
    replayed: Counter[str] = Counter()
    try:
        with Publisher(
            settings=settings, key_serde="bytes", value_serde="bytes", client_id="millstream-dlq"
        ) as publisher:
            for dead_letter in plan.tasks:
                headers: Headers = [
                    *replay_headers(dead_letter.headers, dead_letter.position.offset)
                ]
                publisher.publish(
                    dead_letter.source_topic or "",
                    dead_letter.value,
                    key=dead_letter.key,
                    headers=headers,
                    on_delivery=_counted(replayed, dead_letter.task_name or ""),
                )
            publisher.flush(_FLUSH_TIMEOUT)
    except DeliveryError as exc:
        exc.add_note(f"{replayed.total()} of {len(plan.tasks)} dead letters were replayed")
        raise
    return replayed


def _counted(replayed: Counter[str], task_name: str) -> Callable[[Delivery], None]:
    def count(delivery: Delivery) -> None:
        if delivery.exception(0) is None:
            replayed[task_name] += 1

    return count


class DeadLetterTopic:
    """The dead-letter topic ``{app_id}-dlq`` of one app on one cluster.

    Every call blocks; reads end at the end offsets taken when they start, and raise
    KafkaError when no record comes for ``settings.client_timeout`` seconds before then.
    """

    def __init__(self, settings: Settings, app_id: str) -> None:
        self.name = f"{app_id}-dlq"
        self.settings = settings
        self._timeout = settings.client_timeout

    @functools.cached_property
    def _admin(self) -> TopicAdmin:
        return TopicAdmin(self.settings)

    def partitions(self) -> list[int]:
        """Raises TopicNotFoundError when the topic does not exist."""
        count = self._admin.partition_counts().get(self.name)
        if count is None:
            raise TopicNotFoundError(
                f"topic {self.name!r} does not exist: the app has dead-lettered nothing yet, "
                "or the app id is wrong"
            )
        return list(range(count))

    def watermarks(self) -> dict[int, tuple[int, int]]:
        """The first and end offset of each partition (end: the last stable offset)."""
        partitions = self.partitions()
        consumer = self._consumer()
        try:
            return {p: self._watermarks(consumer, p) for p in partitions}
        finally:
            consumer.close()

    def read(self) -> Iterator[DeadLetter]:
        """Every record, from each partition's first offset to its end, partitions interleaved."""
        yield from self._read(self.watermarks())

    def read_at(self, position: Position) -> DeadLetter:
        """The record at ``position``.

        Raises:
            KafkaError: the topic has no such partition, or no record at that offset.
        """
        marks = self.watermarks()
        if position.partition not in marks:
            span = f"partitions 0 to {len(marks) - 1}"
            raise KafkaError(f"{self.name} has no partition {position.partition} ({span})")
        low, high = marks[position.partition]
        if not low <= position.offset < high:
            raise KafkaError(
                f"{self.name} has no record at {position}: partition {position.partition} "
                + (f"holds offsets {low} to {high - 1}" if high > low else "is empty")
            )
        wanted = {position.partition: (position.offset, position.offset + 1)}
        for dead_letter in self._read(wanted):
            return dead_letter
        raise KafkaError(f"{self.name} has no record at {position} (a transaction marker?)")

    def purge(self, marks: dict[int, tuple[int, int]]) -> dict[int, int]:
        """Delete the records below the end offset of each partition in ``marks`` (taken
        with :meth:`watermarks`, so records that came since stay); returns the count
        deleted per partition once the brokers report each partition's start moved there.

        Raises:
            KafkaError: a partition's start had not moved within ``client_timeout``.
        """
        ends = {p: high for p, (low, high) in marks.items() if high > low}
        self._admin.purge({(self.name, p): end for p, end in ends.items()})
        deadline = time.monotonic() + self._timeout
        while ends:
            starts = self.watermarks()
            ends = {p: end for p, end in ends.items() if starts[p][0] < end}
            if ends and time.monotonic() > deadline:
                late = ", ".join(f"partition {p} starts at {starts[p][0]}" for p in ends)
                raise KafkaError(
                    f"purging {self.name}: {late} after {self._timeout:g}s "
                    "(may this client delete records?)"
                )
            if ends:
                time.sleep(0.1)
        return {p: high - low for p, (low, high) in marks.items()}

    def _read(self, ranges: dict[int, tuple[int, int]]) -> Iterator[DeadLetter]:
        """The records with offsets in [start, end) of each partition."""
        pending = {p: end for p, (start, end) in ranges.items() if start < end}
        if not pending:
            return
        consumer = self._consumer()
        try:
            consumer.assign([TopicPartition(self.name, p, ranges[p][0]) for p in pending])
            last_progress = time.monotonic()
            while pending:
                partition, reached, record = self._polled(consumer.poll(0.2))
                if partition not in pending:
                    if time.monotonic() - last_progress > self._timeout:
                        raise self._stalled(consumer, pending)
                    continue
                last_progress = time.monotonic()
                if record is not None and reached <= pending[partition]:
                    yield DeadLetter.of(record)
                if reached >= pending[partition]:
                    del pending[partition]
                    consumer.pause([TopicPartition(self.name, partition)])
        finally:
            consumer.close()

    def _polled(self, message: Message | None) -> tuple[int | None, int, ConsumedRecord | None]:
        """What a poll returned: the partition it is about, the offset read up to in it (a
        record's offset + 1, or the end offset of an end-of-partition event), the record."""
        if message is None:
            return None, 0, None
        error = message.error()
        if error is None:
            record = cast(ConsumedRecord, message)
            return record.partition(), record.offset() + 1, record
        if error.name() == "_PARTITION_EOF":
            return message.partition(), message.offset() or 0, None
        failure = from_client_error(error, f"reading {self.name}")
        if failure.retriable:
            return None, 0, None  # the client tries again by itself
        raise failure

    def _stalled(self, consumer: Consumer, pending: dict[int, int]) -> KafkaError:
        wanted = [TopicPartition(self.name, p) for p in pending]
        at = {tp.partition: tp.offset for tp in consumer.position(wanted)}
        where = ", ".join(f"partition {p} at {at[p]} of {end}" for p, end in pending.items())
        return BrokerUnreachableError(
            f"reading {self.name}: no record came for {self._timeout:g}s ({where})",
            retriable=True,
        )

    def _consumer(self) -> Consumer:
        # Assigned, never subscribed, never committing: the group id only has to be unique.
        return make_consumer(
            self.settings,
            f"millstream-dlq-{uuid.uuid4().hex}",
            client_id="millstream-dlq",
            **{"group.protocol": "classic", "enable.partition.eof": True},
        )

    def _watermarks(self, consumer: Consumer, partition: int) -> tuple[int, int]:
        what = f"reading the offsets of {self.name} partition {partition}"
        try:
            marks = consumer.get_watermark_offsets(
                TopicPartition(self.name, partition), timeout=self._timeout, cached=False
            )
        except Exception as exc:  # KafkaException, which only millstream.kafka may name
            raise from_exception(exc, what) from exc
        if marks is None:
            raise BrokerUnreachableError(f"{what}: no answer within {self._timeout:g}s")
        low, high = marks
        return int(low), int(high)
