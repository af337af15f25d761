"""The unit of data inside a pipeline, and the runtime services a pipeline step uses.

A row is a plain tuple ``(key, value, timestamp_ms, source_message)``: tuples are
the cheapest Python object to build per record. ``source_message`` is the
consumed Kafka message the row descends from; the dead-letter queue needs its
original bytes, topic, partition and offset when a step fails.
"""

from __future__ import annotations

from typing import Any, Protocol

from millstream.kafka import ConsumedRecord, Producer

Row = tuple[Any, Any, int, ConsumedRecord]


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
