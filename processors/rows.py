"""The unit of data inside a pipeline, and the runtime services a pipeline step uses.

A row is a plain tuple ``(key, value, timestamp_ms, source_message)``: tuples are
the cheapest Python object to build per record. ``source_message`` is the
consumed Kafka message the row descends from; the dead-letter queue needs its
original bytes, topic, partition and offset when a step fails.
"""

from __future__ import annotations

from typing import Any, Protocol

from millstream.kafka import Message

Row = tuple[Any, Any, int, Message]


class StepRuntime(Protocol):
    """What pipeline steps need from the worker that runs them."""

    def dead_letter(self, message: Message, error: BaseException, step: str) -> None:
        """Send ``message`` to the dead-letter topic because ``step`` raised ``error``."""

    def produce(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int) -> None:
        """Produce one record through the worker's producer, waiting for room if full."""
