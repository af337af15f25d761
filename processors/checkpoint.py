"""Checkpoints: the moment processed input becomes committed.

At-least-once: flush sinks, write state changes to their changelogs, flush the
producer (outputs, changelogs and dead letters are on the brokers), apply the
state changes locally, then commit the offsets. If a step fails, nothing is
committed and the records are processed again. Offsets the group coordinator
could not take for a moment (it is moving to another broker) go with the next
checkpoint.

Exactly-once: outputs, changelog writes and the consumed offsets go into one
Kafka transaction; state changes are applied locally only once it committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from millstream.errors import DeliveryError
from millstream.kafka import Consumer, Producer, TopicPartition, from_exception
from millstream.kafka.transactions import begin_transaction, commit_transaction
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
    """At-least-once checkpoints: tracks processed offsets and commits them per interval."""

    def __init__(self, interval: float, flush_timeout: float = 60.0) -> None:
        self.interval = interval
        self.flush_timeout = flush_timeout
        self.pending: dict[tuple[str, int], int] = {}
        #: The offsets of the last successful commit, per partition.
        self.committed: dict[tuple[str, int], int] = {}
        self.commits = 0
        self.delivery_error: str | None = None
        self._next = time.monotonic() + interval

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def on_delivery(self, error: object, message: object) -> None:
        """Producer delivery callback (configured to report failures only)."""
        if error is not None and self.delivery_error is None:
            self.delivery_error = str(error)

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop pending offsets of partitions this worker no longer owns."""
        for tp in partitions:
            self.pending.pop(tp, None)
            self.committed.pop(tp, None)

    def commit(
        self,
        consumer: Consumer,
        producer: Producer,
        sinks: Iterable[Sink],
        state: StateManager | None,
        produce: Callable[..., Any],
    ) -> None:
        """Make everything processed so far durable, then commit its offsets.

        Raises:
            DeliveryError: a record could not be delivered; nothing was committed.
        """
        for sink in sinks:
            sink.flush()
        written = state.write_changelogs(produce) if state else []
        self._flush(producer)
        if state is not None:
            state.commit_local(written)
        if self.pending:
            offsets = [TopicPartition(t, p, o) for (t, p), o in self.pending.items()]
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                self.commits += 1
                self.committed.update(self.pending)
            except Exception as exc:
                error = from_exception(exc, "committing offsets")
                if error.code in _LOST_MEMBERSHIP:
                    # The group moved on without us: the new owners reprocess from
                    # the last commit, which at-least-once allows.
                    log.warning("offsets not committed, partitions were reassigned: %s", error)
                elif error.retriable:
                    # The group's coordinator is moving (its broker died): the offsets
                    # stay pending and go with the next checkpoint.
                    log.warning("offsets not committed, again at the next checkpoint: %s", error)
                    self._next = time.monotonic() + self.interval
                    return
                else:
                    raise error from exc
            self.pending.clear()
        self._next = time.monotonic() + self.interval

    def _flush(self, producer: Producer) -> None:
        remaining = producer.flush(self.flush_timeout)
        if remaining:
            raise DeliveryError(f"{remaining} records not delivered within {self.flush_timeout}s")
        if self.delivery_error is not None:
            error, self.delivery_error = self.delivery_error, None
            raise DeliveryError(f"a record could not be delivered: {error}")


class TransactionalCheckpoint(Checkpoint):
    """Exactly-once checkpoints: one Kafka transaction per interval.

    The worker keeps a transaction open at all times; :meth:`commit` adds the
    changelog writes and the consumed offsets to it, commits it, applies the
    state changes locally and opens the next one. Each call to the transaction
    coordinator gets ``transaction_timeout``: past it the broker aborts the
    transaction anyway.
    """

    def __init__(self, interval: float, transaction_timeout: float) -> None:
        super().__init__(interval)
        self.transaction_timeout = transaction_timeout

    def commit(
        self,
        consumer: Consumer,
        producer: Producer,
        sinks: Iterable[Sink],
        state: StateManager | None,
        produce: Callable[..., Any],
    ) -> None:
        """Raises:
        TransactionError: the transaction did not commit (``fatal`` when the
            producer was fenced or is stuck and must be replaced).
        DeliveryError: a record of the transaction could not be delivered.
        """
        for sink in sinks:
            sink.flush()
        written = state.write_changelogs(produce) if state else []
        if not self.pending and not written:
            self._next = time.monotonic() + self.interval
            return
        self._flush(producer)
        offsets = [(t, p, o) for (t, p), o in self.pending.items()]
        commit_transaction(producer, consumer, offsets, self.transaction_timeout)
        self.commits += 1
        self.committed.update(self.pending)
        self.pending.clear()
        if state is not None:
            state.commit_local(written)
        begin_transaction(producer)
        self._next = time.monotonic() + self.interval
