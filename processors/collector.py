"""The record collector: the one way a worker's records reach Kafka.

Pipeline steps, processor functions, changelog writes, dead letters and late
records all send through one :class:`RecordCollector`, which owns the wait for room
in the producer's queue, the routing of failed and late records, the output
counters and the first delivery failure of a checkpoint. Steps are bound to the
collector, not to the worker; the test driver binds them to a collector over an
in-memory producer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from millstream.errors import DeliveryError, LateRecord
from millstream.kafka import (
    ANY_PARTITION,
    ConsumedRecord,
    Producer,
    flush_within,
    produce_when_room,
)
from millstream.processors.dead_letters import dead_letter_headers
from millstream.processors.worker_config import WorkerStats
from millstream.sinks.base import SinkRecord

log = logging.getLogger("millstream.dlq")

#: At most one warning about dead letters per this many seconds.
_WARN_EVERY = 5.0


class RecordCollector:
    """Sends records through one producer and keeps count. Not thread-safe.

    Delivery is asynchronous: :meth:`send` returns once the record is queued, and
    :meth:`flush` (called by the checkpoint) waits for every queued record and raises
    if any failed.
    """

    def __init__(
        self,
        stats: WorkerStats,
        dlq_topic: str,
        late_topic: str,
        flush_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = stats
        #: Wall-clock seconds for steps that act on idle time (a test driver sets its own).
        self.clock = clock
        self.dlq_topic = dlq_topic
        self.late_topic = late_topic
        self.flush_timeout = flush_timeout
        self._producer: Producer | None = None
        self._delivery_error: str | None = None
        self._last_warning = 0.0

    # -- the producer ----------------------------------------------------------------

    def attach(self, producer: Producer) -> None:
        """Send through ``producer`` from now on (its delivery callback must be
        :meth:`on_delivery`)."""
        self._producer = producer
        self._delivery_error = None

    @property
    def producer(self) -> Producer:
        """The producer, for steps that produce on the hot path and count with
        :meth:`produced`; anything that may meet a full queue uses :meth:`send`."""
        assert self._producer is not None, "collector used before attach()"
        return self._producer

    def on_delivery(self, error: object, message: object) -> None:
        """The producer's delivery callback (configured to report failures only)."""
        if error is not None and self._delivery_error is None:
            self._delivery_error = str(error)

    # -- sending -----------------------------------------------------------------------

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: list[tuple[str, str | bytes]] | None = None,
        partition: int = ANY_PARTITION,
    ) -> None:
        """Queue one output record, waiting while the producer's queue is full."""
        produce_when_room(self.producer, topic, value, key, partition, timestamp, headers)
        self.produced(1, topic)

    def produced(self, count: int, topic: str) -> None:
        """Count ``count`` output records to ``topic`` a step queued through
        :attr:`producer` itself (once per batch: this is the hot path's counter)."""
        stats = self.stats
        stats.records_out += count
        by_topic = stats.topic_records_out
        by_topic[topic] = by_topic.get(topic, 0) + count

    def send_changelog(self, topic: str, partition: int, key: bytes, value: bytes | None) -> None:
        """Queue one changelog record (not counted as output)."""
        produce_when_room(self.producer, topic, value, key, partition)

    def dead_letter(self, message: ConsumedRecord, error: BaseException, step: str) -> None:
        """Send ``message`` to the dead-letter topic because ``step`` raised ``error``."""
        self._reroute(message, error, step, self.dlq_topic)
        self.note_dead_letter(message, error, step)

    def sink_dead_letter(self, record: SinkRecord, error: BaseException) -> None:
        """Send a record a sink's destination refused for good to the dead-letter topic."""
        if record.source is None:
            raise error
        self.dead_letter(record.source, error, "sink")

    def note_dead_letter(self, message: ConsumedRecord, error: BaseException, step: str) -> None:
        """Count (and now and then log) a dead letter its step sent itself."""
        self.stats.dead_letters += 1
        self._warn(message, error, step)

    def late(self, message: ConsumedRecord, reason: str, step: str, to_topic: bool) -> None:
        """Count a late record; with ``to_topic``, send it to the late topic with ``reason``."""
        self.stats.late_records += 1
        if to_topic:
            self._reroute(message, LateRecord(reason), step, self.late_topic)

    def _reroute(
        self, message: ConsumedRecord, error: BaseException, step: str, topic: str
    ) -> None:
        timestamp = message.timestamp()[1]
        produce_when_room(
            self.producer,
            topic,
            message.value(),
            message.key(),
            ANY_PARTITION,
            max(timestamp, 0),
            dead_letter_headers(message, error, step),
        )

    # -- checkpoints -----------------------------------------------------------------

    def flush(self) -> None:
        """Wait until every queued record is delivered.

        Raises:
            DeliveryError: records were still queued after ``flush_timeout``, or one failed.
        """
        remaining = flush_within(self.producer, self.flush_timeout)
        if remaining:
            raise DeliveryError(f"{remaining} records not delivered within {self.flush_timeout}s")
        if self._delivery_error is not None:
            error, self._delivery_error = self._delivery_error, None
            raise DeliveryError(f"a record could not be delivered: {error}")

    def forget_failures(self) -> None:
        """Drop a recorded delivery failure (its transaction was aborted)."""
        self._delivery_error = None

    def _warn(self, message: ConsumedRecord, error: BaseException, step: str) -> None:
        now = time.monotonic()
        if now - self._last_warning < _WARN_EVERY:
            return
        self._last_warning = now
        log.warning(
            "record %s[%d]@%d failed in %s (%s: %s); sent to %s (%d so far)",
            message.topic(),
            message.partition(),
            message.offset(),
            step,
            type(error).__name__,
            error,
            self.dlq_topic,
            self.stats.dead_letters,
            extra={
                "topic": message.topic(),
                "partition": message.partition(),
                "offset": message.offset(),
            },
        )
