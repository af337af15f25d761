"""The unit of data inside a pipeline, and how consumed messages become rows.

A row is a plain tuple ``(key, value, timestamp_ms, source_message)``: tuples are
the cheapest Python object to build per record. ``source_message`` is the
consumed Kafka message the row descends from; the dead-letter queue needs its
original bytes, topic, partition and offset when a step fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from millstream.kafka import ConsumedRecord
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
