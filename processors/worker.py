"""The worker: one consumer in the application's group running its topology.

The loop is batch-oriented: consume up to ``batch_size`` records, split them
into runs of one partition, deserialize each run once and push it through the
pipelines of its topic, then checkpoint every ``commit_interval``. On SIGTERM
or SIGINT the worker finishes the batch, checkpoints, leaves the group and
returns.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from millstream.config import Settings
from millstream.errors import KafkaError, MillstreamError
from millstream.kafka import (
    Consumer,
    Message,
    Producer,
    TopicPartition,
    from_client_error,
    make_consumer,
    make_producer,
)
from millstream.processors.checkpoint import Checkpoint
from millstream.processors.dead_letters import DeadLetterQueue
from millstream.processors.provisioning import provision_topics
from millstream.processors.rows import Row
from millstream.processors.topology import Topology
from millstream.sinks.base import SinkContext
from millstream.topics import Topic

log = logging.getLogger("millstream.worker")


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker processes: validated by the App before a worker exists."""

    commit_interval: float = 1.0
    batch_size: int = 5000
    poll_timeout: float = 0.2
    group_protocol: str = "consumer"
    consumer_config: dict[str, Any] = field(default_factory=dict)
    producer_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class WorkerStats:
    """Counters a worker keeps while it runs."""

    records_in: int = 0
    records_out: int = 0
    dead_letters: int = 0
    rebalances: int = 0
    commits: int = 0


def group_protocol_config(protocol: str) -> dict[str, Any]:
    """Consumer properties for the KIP-848 ``consumer`` protocol or the ``classic`` one."""
    if protocol == "consumer":
        return {"group.protocol": "consumer"}
    return {
        "group.protocol": "classic",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 2000,
    }


class Worker:
    """Runs one topology in this process until stopped. Not thread-safe except :meth:`stop`."""

    def __init__(self, topology: Topology, settings: Settings, config: WorkerConfig) -> None:
        self.topology = topology
        self.settings = settings
        self.config = config
        self.stats = WorkerStats()
        self.checkpoint = Checkpoint(config.commit_interval)
        self._stop = threading.Event()
        self._failed = False
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._dlq: DeadLetterQueue | None = None

    # -- lifecycle -------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to finish its batch, checkpoint and return. Safe from any thread."""
        self._stop.set()

    def run(self, *, install_signal_handlers: bool = True) -> WorkerStats:
        """Process until :meth:`stop` or SIGTERM/SIGINT; returns the counters.

        Raises:
            BrokerUnreachableError: the cluster did not answer at startup.
            TopicNotFoundError: a referenced topic does not exist.
            DeliveryError: outputs could not be delivered; offsets were not committed.
        """
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        provision_topics(self.topology, self.settings)
        self._start_clients()
        try:
            self._loop()
        except BaseException:
            self._failed = True
            raise
        finally:
            self._shutdown()
        return self.stats

    def _start_clients(self) -> None:
        config = self.config
        client_id = f"{self.topology.app_id}-{os.getpid()}"
        self._producer = make_producer(
            self.settings,
            client_id=client_id,
            on_delivery=self.checkpoint.on_delivery,
            **{"delivery.report.only.error": True, **config.producer_config},
        )
        self._dlq = DeadLetterQueue(self.topology.dlq_topic, self._producer.produce)
        self._consumer = make_consumer(
            self.settings,
            self.topology.app_id,
            client_id=client_id,
            **{**group_protocol_config(config.group_protocol), **config.consumer_config},
        )
        context = SinkContext(self.topology.app_id, self.settings, self._producer)
        for sink in self.topology.sinks:
            sink.open(context)
        for roots in self.topology.sources.values():
            for root in roots:
                root.bind(self)
        self._consumer.subscribe(
            list(self.topology.sources),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info(
            "worker %s started in group %r on %s",
            client_id,
            self.topology.app_id,
            ", ".join(self.topology.sources),
        )

    def _loop(self) -> None:
        assert self._consumer is not None and self._producer is not None
        consume, poll = self._consumer.consume, self._producer.poll
        batch_size, timeout = self.config.batch_size, self.config.poll_timeout
        while not self._stop.is_set():
            messages = consume(batch_size, timeout)
            if messages:
                self._process(messages)
            poll(0)
            if self.checkpoint.due():
                self._commit()

    def _shutdown(self) -> None:
        consumer, producer = self._consumer, self._producer
        try:
            if not self._failed and consumer is not None and producer is not None:
                self._commit()
        finally:
            if consumer is not None:
                consumer.close()
            for sink in self.topology.sinks:
                sink.close()
            if producer is not None:
                producer.flush(10)
        log.info(
            "worker stopped: %d in, %d out, %d dead letters, %d commits",
            self.stats.records_in,
            self.stats.records_out,
            self.stats.dead_letters,
            self.stats.commits,
        )

    # -- processing ------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        pending = self.checkpoint.pending
        topics = self.topology.topics
        sources = self.topology.sources
        for topic, partition, run in _partition_runs(messages):
            self.stats.records_in += len(run)
            rows = self._deserialize(topics[topic], run)
            if rows:
                for root in sources[topic]:
                    root.process(rows)
            pending[(topic, partition)] = run[-1].offset() + 1
        if self._dlq is not None:
            self.stats.dead_letters = self._dlq.count

    def _deserialize(self, topic: Topic, messages: list[Message]) -> list[Row]:
        key_of, value_of = topic.key_serde.deserialize, topic.value_serde.deserialize
        rows: list[Row] = []
        append = rows.append
        for m in messages:
            try:
                append((key_of(m.key()), value_of(m.value()), m.timestamp()[1], m))
            except Exception as exc:
                self.dead_letter(m, exc, f"deserialize({topic.name})")
        return rows

    # -- StepRuntime -----------------------------------------------------------

    def dead_letter(self, message: Message, error: BaseException, step: str) -> None:
        assert self._dlq is not None
        self._dlq.send(message, error, step)

    def produce(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int) -> None:
        assert self._producer is not None
        producer = self._producer
        while True:
            try:
                producer.produce(topic, value, key, timestamp=timestamp)
                break
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                producer.poll(0.05)
        self.stats.records_out += 1

    # -- checkpoints and rebalances -------------------------------------------------

    def _commit(self) -> None:
        assert self._consumer is not None and self._producer is not None
        self.checkpoint.commit(self._consumer, self._producer, self.topology.sinks)
        self.stats.commits = self.checkpoint.commits

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.rebalances += 1
        log.info("assigned %s", _describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.rebalances += 1
        log.info("revoked %s", _describe(partitions))
        if not self._failed and partitions:
            self._commit()
        self.checkpoint.forget((tp.topic, tp.partition) for tp in partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s without a commit; their new owners reprocess", _describe(partitions))
        self.checkpoint.forget((tp.topic, tp.partition) for tp in partitions)


def _partition_runs(messages: list[Message]) -> Iterator[tuple[str, int, list[Message]]]:
    """Split a consumed batch into consecutive runs of one topic-partition, in order.

    Error events in the batch are not records: fatal ones raise, the rest are logged.
    """
    run: list[Message] = []
    current: tuple[str, int] | None = None
    for m in messages:
        error = m.error()
        if error is not None:
            _consumer_error(error)
            continue
        tp = (m.topic(), m.partition())
        if tp != current:
            if run:
                assert current is not None
                yield current[0], current[1], run
            run, current = [], tp
        run.append(m)
    if run and current is not None:
        yield current[0], current[1], run


def _consumer_error(error: Any) -> None:
    mapped: KafkaError = from_client_error(error, "consuming")
    if error.fatal():
        raise mapped
    log.warning("%s", mapped)


def _describe(partitions: list[TopicPartition]) -> str:
    if not partitions:
        return "nothing"
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)


__all__ = ["MillstreamError", "Worker", "WorkerConfig", "WorkerStats"]
