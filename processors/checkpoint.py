"""Checkpoints: the moment consumed offsets become committed.

At-least-once order: flush sinks, flush the producer (outputs and dead letters
are on the brokers), then commit the offsets of everything processed. If any
step fails, nothing is committed and the records are processed again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from millstream.errors import DeliveryError
from millstream.kafka import Consumer, Producer, TopicPartition, from_exception
from millstream.processors.state.manager import StateManager
from millstream.sinks.base import Sink

log = logging.getLogger("millstream.checkpoint")

_LOST_MEMBERSHIP = {
    "UNKNOWN_MEMBER_ID",
    "STALE_MEMBER_EPOCH",
    "FENCED_MEMBER_EPOCH",
    "ILLEGAL_GENERATION",
    "REBALANCE_IN_PROGRESS",
    "_ASSIGNMENT_LOST",
}


class Checkpoint:
    """Tracks processed offsets per partition and commits them at each interval."""

    def __init__(self, interval: float, flush_timeout: float = 60.0) -> None:
        self.interval = interval
        self.flush_timeout = flush_timeout
        self.pending: dict[tuple[str, int], int] = {}
        self.commits = 0
        self.delivery_error: str | None = None
        self._next = time.monotonic() + interval

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def on_delivery(self, error: object, message: object) -> None:
        """Producer delivery callback (configured to report failures only)."""
        if error is not None and self.delivery_error is None:
            self.delivery_error = str(error)

    def commit(
        self,
        consumer: Consumer,
        producer: Producer,
        sinks: Iterable[Sink],
        state: StateManager | None = None,
        produce: Callable[..., Any] | None = None,
    ) -> None:
        """Flush sinks, write state changes to their changelogs, flush the producer,
        apply the state changes locally, then commit the pending offsets.

        Raises:
            DeliveryError: a record could not be delivered; nothing was committed.
        """
        for sink in sinks:
            sink.flush()
        written = state.write_changelogs(produce or producer.produce) if state else []
        remaining = producer.flush(self.flush_timeout)
        if remaining:
            raise DeliveryError(f"{remaining} records not delivered within {self.flush_timeout}s")
        if self.delivery_error is not None:
            raise DeliveryError(f"a record could not be delivered: {self.delivery_error}")
        if state is not None:
            state.commit_local(written)
        if self.pending:
            offsets = [TopicPartition(t, p, o) for (t, p), o in self.pending.items()]
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                self.commits += 1
            except Exception as exc:
                error = from_exception(exc, "committing offsets")
                if error.code not in _LOST_MEMBERSHIP:
                    raise error from exc
                # The group moved on without us: the new owners reprocess from
                # the last commit, which at-least-once allows.
                log.warning("offsets not committed, partitions were reassigned: %s", error)
            self.pending.clear()
        self._next = time.monotonic() + self.interval

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop pending offsets of partitions this worker lost without a chance to commit."""
        for tp in partitions:
            self.pending.pop(tp, None)
