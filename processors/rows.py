"""The unit of data inside a pipeline, and the runtime services a pipeline step uses.

A row is a plain tuple ``(key, value, timestamp_ms, source_message)``: tuples are
the cheapest Python object to build per record. ``source_message`` is the
consumed Kafka message the row descends from; the dead-letter queue needs its
original bytes, topic, partition and offset when a step fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from millstream.kafka import ConsumedRecord, Producer
from millstream.serde import fast_deserializer
from millstream.topics import Topic

Row = tuple[Any, Any, int, ConsumedRecord]

#: Where a record that cannot be read goes: (message, error, step).
DeadLetter = Callable[[ConsumedRecord, BaseException, str], None]


def deserialize(topic: Topic, messages: list[ConsumedRecord], dead_letter: DeadLetter) -> list[Row]:
    """The rows of ``messages`` of ``topic``, in order. A run that fails as a whole is
    read again one record at a time with the full serdes; the records that still fail
    go to ``dead_letter`` and are left out."""
    key_of = fast_deserializer(topic.key_serde)
    value_of = fast_deserializer(topic.value_serde)
    try:
        return [(key_of(m.key()), value_of(m.value()), m.timestamp()[1], m) for m in messages]
    except Exception:
        return _deserialize_carefully(topic, messages, dead_letter)


def _deserialize_carefully(
    topic: Topic, messages: list[ConsumedRecord], dead_letter: DeadLetter
) -> list[Row]:
    key_of, value_of = topic.key_serde.deserialize, topic.value_serde.deserialize
    rows: list[Row] = []
    append = rows.append
    for m in messages:
        try:
            append((key_of(m.key()), value_of(m.value()), m.timestamp()[1], m))
        except Exception as exc:
            dead_letter(m, exc, f"deserialize({topic.name})")
    return rows


class StepRuntime(Protocol):
    """What pipeline steps need from the worker that runs them."""

    @property
    def producer(self) -> Producer:
        """The worker's producer, for steps that produce on the hot path."""

    def records_produced(self, count: int) -> None:
        """Count records a step produced through ``producer`` directly."""

    def dead_letter(self, message: ConsumedRecord, error: BaseException, step: str) -> None:
        """Send ``message`` to the dead-letter topic because ``step`` raised ``error``."""

    def produce(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int) -> None:
        """Produce one record through the worker's producer, waiting for room if full."""

    def late(self, message: ConsumedRecord, reason: str, step: str, to_topic: bool) -> None:
        """Count a late record; with ``to_topic``, produce it to the late topic with ``reason``."""


class OriginMessage:
    """Stands in for a consumed message where a row has none (results emitted on a timer).

    It answers the accessors the dead-letter queue reads.
    """

    __slots__ = ("_partition", "_timestamp", "_topic")

    def __init__(self, topic: str, partition: int, timestamp: int) -> None:
        self._topic = topic
        self._partition = partition
        self._timestamp = timestamp

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return -1

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes | None:
        return None

    def headers(self) -> list[tuple[str, bytes]] | None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)
