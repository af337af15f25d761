"""Checkpoints: the moment processed input becomes committed.

A checkpoint runs in two phases over every owned partition, as Kafka Streams does:

1. ``prepare_commit`` on each partition: its changed stores send their changes and
   a position marker to their changelogs; it offers the offset it processed up to.
2. One commit of all offered offsets: a synchronous offsets commit (at-least-once)
   or one Kafka transaction holding the outputs, changelog writes and offsets
   (exactly-once).
3. ``post_commit`` on each partition: the stores apply their changes locally, and
   the committed offsets become the partitions' committed offsets.

Sinks are flushed first, and every queued record (outputs, changelogs, dead letters)
is delivered before the commit. At-least-once: if a step fails, nothing is
committed and the records are processed again; offsets the group coordinator could
not take for a moment (it is moving to another broker) go with the next checkpoint.
Exactly-once: a failed transaction raises, and the worker aborts and rewinds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from millstream.kafka import Consumer, TopicPartition, from_exception
from millstream.kafka.transactions import begin_transaction, commit_transaction
from millstream.processors.collector import RecordCollector
from millstream.processors.partitions import OwnedPartitions
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

Offsets = list[tuple[str, int, int]]
#: Commit metadata by (topic, partition), where a partition has any (task partitions).
Metadata = dict[tuple[str, int], str]


class Checkpoint:
    """At-least-once checkpoints, every ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.commits = 0
        self._next = time.monotonic() + interval

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def commit(
        self,
        consumer: Consumer,
        collector: RecordCollector,
        owned: OwnedPartitions,
        sinks: Iterable[Sink],
    ) -> None:
        """Make everything processed so far durable, then commit its offsets.

        Raises:
            DeliveryError: a record could not be delivered; nothing was committed.
            TransactionError: (exactly-once) the transaction did not commit.
        """
        self._next = time.monotonic() + self.interval
        for sink in sinks:
            sink.flush()
        written = owned.prepare_commit(collector.send_changelog)
        offsets = owned.committable_offsets()
        if not offsets and not written:
            return
        collector.flush()
        committed = self._commit_offsets(consumer, collector, offsets, owned.commit_metadata())
        if committed:
            self.commits += 1
        if owned.state is not None:
            owned.state.record_changelog_ends(written)
        owned.post_commit(offsets_committed=committed)

    def _commit_offsets(
        self, consumer: Consumer, collector: RecordCollector, offsets: Offsets, metadata: Metadata
    ) -> bool:
        """Commit ``offsets``; False when they were not committed and that is allowed."""
        if not offsets:
            return False
        try:
            consumer.commit(
                offsets=[_position(t, p, o, metadata) for t, p, o in offsets],
                asynchronous=False,
            )
            return True
        except Exception as exc:
            error = from_exception(exc, "committing offsets")
            if error.code in _LOST_MEMBERSHIP:
                # The group moved on without us: the new owners reprocess from the
                # last commit, which at-least-once allows.
                log.warning("offsets not committed, partitions were reassigned: %s", error)
                return False
            if error.retriable:
                # The group's coordinator is moving (its broker died): the offsets are
                # offered again at the next checkpoint.
                log.warning("offsets not committed, again at the next checkpoint: %s", error)
                return False
            raise error from exc


def _position(topic: str, partition: int, offset: int, metadata: Metadata) -> TopicPartition:
    """The offset to commit, with metadata only where the partition has some (a task
    partition's done offsets): the others commit exactly as they always did."""
    text = metadata.get((topic, partition))
    if text:
        return TopicPartition(topic, partition, offset, text)
    return TopicPartition(topic, partition, offset)


class TransactionalCheckpoint(Checkpoint):
    """Exactly-once checkpoints: one Kafka transaction per interval.

    The worker keeps a transaction open at all times; the commit adds the consumed
    offsets to it, commits it, and opens the next one. The stores apply their changes
    only after that. Each call to the transaction coordinator gets
    ``transaction_timeout``: past it the broker aborts the transaction anyway.
    """

    def __init__(self, interval: float, transaction_timeout: float) -> None:
        super().__init__(interval)
        self.transaction_timeout = transaction_timeout

    def _commit_offsets(
        self, consumer: Consumer, collector: RecordCollector, offsets: Offsets, metadata: Metadata
    ) -> bool:
        producer = collector.producer
        commit_transaction(producer, consumer, offsets, self.transaction_timeout, metadata)
        begin_transaction(producer)
        return True
