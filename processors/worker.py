"""The worker: one consumer in the application's group running its topology.

The loop is batch-oriented: consume up to ``batch_size`` records, split them
into runs of one partition, deserialize each run once and push it through the
pipelines of its topic, then checkpoint every ``commit_interval``. Partitions
with state are restored before their first record is processed. On SIGTERM or
SIGINT the worker finishes the batch, checkpoints, leaves the group and returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time

from millstream.config import Settings
from millstream.errors import DeliveryError, ProducerFenced, SinkBackpressure, TransactionError
from millstream.kafka import (
    Consumer,
    Message,
    Producer,
    TopicAdmin,
    TopicPartition,
    make_consumer,
    make_producer,
)
from millstream.logs import log_app, reset_partition, set_partition
from millstream.processors.backpressure import SinkOutage, pause_input
from millstream.processors.batches import partition_runs
from millstream.processors.checkpoint import Checkpoint, TransactionalCheckpoint
from millstream.processors.collector import RecordCollector
from millstream.processors.exactly_once import Transactions, cannot_go_on
from millstream.processors.health import is_alive
from millstream.processors.heap import worker_gc
from millstream.processors.metrics import WorkerTelemetry
from millstream.processors.partitions import OwnedPartitions
from millstream.processors.provisioning import provision_topics
from millstream.processors.rows import deserialize
from millstream.processors.state.manager import StateManager
from millstream.processors.state.restore import Restorer
from millstream.processors.tasks.queue_runtime import queue_runtime
from millstream.processors.tasks.runtime import TaskRuntime
from millstream.processors.tasks.wiring import task_steps
from millstream.processors.topology import Topology
from millstream.processors.worker_config import WorkerConfig, WorkerStats, group_protocol_config
from millstream.sinks.base import SinkContext

log = logging.getLogger("millstream.worker")

PUNCTUATE_INTERVAL = 0.5
PURGE_INTERVAL = 30.0
#: The producer's linger.ms in an app with tasks (replies wait for it).
TASK_LINGER_MS = 1


class Worker:
    """Runs one topology in this process until stopped. Not thread-safe except :meth:`stop`."""

    def __init__(self, topology: Topology, settings: Settings, config: WorkerConfig) -> None:
        self.topology = topology
        self.settings = settings
        self.config = config
        self.stats = WorkerStats()
        self.checkpoint = (
            TransactionalCheckpoint(config.commit_interval, config.transaction_timeout)
            if config.exactly_once
            else Checkpoint(config.commit_interval)
        )
        self._stop = threading.Event()
        self._failed = False
        self._fenced = False
        self._transactions = (
            Transactions(settings, topology.app_id, config) if config.exactly_once else None
        )
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self.collector = RecordCollector(self.stats, topology.dlq_topic, topology.late_topic)
        self._partitions = OwnedPartitions(topology, None)
        # Present in every worker: its hooks do nothing where no partition holds tasks.
        self.tasks = TaskRuntime(
            topology.app_id, task_steps(topology), self.collector, exactly_once=config.exactly_once
        )
        self._client_id = f"{topology.app_id}-{os.getpid()}"
        self._group_protocol = config.group_protocol
        self._last_loop = time.monotonic()
        self._outage = SinkOutage()
        self._next_purge = time.monotonic() + PURGE_INTERVAL
        self._admin: TopicAdmin | None = None
        self.telemetry = WorkerTelemetry(settings, topology.app_id, self._client_id)
        self.telemetry.bind(
            lambda: self.stats,
            gauges=lambda: {"assigned_partitions": float(len(self._partitions.assigned))},
            healthy=self._healthy,
            ready=lambda: bool(self._partitions.assigned) and not self._partitions.restoring,
            restores=lambda: self._partitions.restore_progress(),
            extra=self.tasks.metrics if topology.tasks else None,
        )

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
        owns_process = threading.current_thread() is threading.main_thread()
        if install_signal_handlers and owns_process:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        with log_app(self.topology.app_id):
            self._run(owns_process)
        return self.stats

    def _run(self, owns_process: bool) -> None:
        provision_topics(self.topology, self.settings)
        self._group_protocol = self._choose_group_protocol()
        self.telemetry.start()
        # A worker on the main thread owns its process and tunes the collector for it;
        # one started on another thread leaves the application's settings alone.
        # Queue-mode tasks run on a share consumer of their own (tasks/queue_runtime.py).
        queue = queue_runtime(
            self.topology,
            self.settings,
            self.config,
            self.tasks.metrics,
            self._client_id,
            self.stop,
        )
        with worker_gc() if owns_process else contextlib.nullcontext():
            try:
                if queue is not None:
                    queue.start()
                self._run_until_stopped()
                if queue is not None and queue.error is not None:
                    raise queue.error
            except BaseException:
                self._failed = True
                raise
            finally:
                if queue is not None:
                    queue.close()
                self._shutdown()
                if self._transactions is not None:
                    self._transactions.release()
                self.tasks.close()
                self.telemetry.close()

    def _run_until_stopped(self) -> None:
        """Start and loop; when the producer cannot go on, shut down and start again."""
        while True:
            self._start()
            try:
                self._loop()
                return
            except Exception as exc:
                reason = self._producer_lost(exc)
                if reason is None:
                    raise
                log.warning("%s; rejoining with a new producer", reason)
                self._fenced = True
                self._shutdown()
                self._fenced = False

    def _producer_lost(self, exc: Exception) -> str | None:
        """Why ``exc`` means this worker's transactional producer cannot go on, if it does.

        Commits raise ProducerFenced (fenced or stuck); produce(), poll() and flush()
        raise wherever the worker is once it was fenced or the broker aborted its
        transaction.
        """
        if isinstance(exc, ProducerFenced):
            return str(exc)
        if self._transactions is None or self._producer is None:
            return None
        reason = cannot_go_on(exc)
        return f"{reason} ({exc})" if reason else None

    def _healthy(self) -> bool:
        return is_alive(self._last_loop, self._partitions.restoring, time.monotonic())

    @property
    def group_protocol(self) -> str:
        """The group protocol in use: ``consumer`` (KIP-848) or ``classic``."""
        return self._group_protocol

    @property
    def metrics_port(self) -> int | None:
        """The port of the metrics server, when one runs."""
        return self.telemetry.port

    def _choose_group_protocol(self) -> str:
        """KIP-848 (``consumer``) where the brokers offer it, else ``classic``."""
        protocol = self.config.group_protocol
        if protocol == "auto":
            offered = TopicAdmin(self.settings).group_protocols()
            protocol = "consumer" if "consumer" in offered else "classic"
            log.info("group protocol: %s (brokers offer %s)", protocol, ", ".join(sorted(offered)))
        return protocol

    def _start(self) -> None:
        config, topology = self.config, self.topology
        self._producer = make_producer(
            self.settings,
            client_id=self._client_id,
            on_delivery=self.collector.on_delivery,
            **{
                "delivery.report.only.error": True,
                # A task's sender waits for its reply: send after 1 ms, not 5.
                **({"linger.ms": TASK_LINGER_MS} if topology.tasks else {}),
                **(self._transactions.producer_config() if self._transactions else {}),
                **config.producer_config,
            },
        )
        self.collector.attach(self._producer)
        if self._transactions is not None:
            self._transactions.start(self._producer)
        state = (
            StateManager(
                topology.app_id,
                topology.store_specs(),
                self.settings.local_dir / "state",
                Restorer(self._restore_consumer),
                TopicAdmin(self.settings),
            )
            if topology.stateful
            else None
        )
        self._partitions = OwnedPartitions(topology, state)
        context = SinkContext(
            topology.app_id, self.settings, self._producer, self.collector.sink_dead_letter
        )
        for sink in topology.sinks:
            sink.open(context)
        for roots in topology.sources.values():
            for root in roots:
                root.bind(self.collector)
        for table in topology.global_tables:
            table.start(self.settings)
        self._consumer = make_consumer(
            self.settings,
            topology.app_id,
            client_id=self._client_id,
            **{**group_protocol_config(self._group_protocol), **config.consumer_config},
        )
        self._consumer.subscribe(
            list(topology.sources),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self.tasks.attach(self._consumer, self._partitions)
        log.info(
            "worker %s started in group %r on %s",
            self._client_id,
            topology.app_id,
            ", ".join(topology.sources),
        )

    def _restore_consumer(self) -> Consumer:
        return make_consumer(
            self.settings,
            f"{self.topology.app_id}-restore",
            client_id=f"{self._client_id}-restore",
            **{
                "fetch.max.bytes": 52428800,
                "max.partition.fetch.bytes": 16777216,
                "queued.max.messages.kbytes": 262144,
            },
        )

    def _loop(self) -> None:
        assert self._consumer is not None and self._producer is not None
        consume, poll = self._consumer.consume, self._producer.poll
        batch_size, timeout = self.config.batch_size, self.config.poll_timeout
        tables, tasks = self.topology.global_tables, self.tasks if self.topology.tasks else None
        next_punctuation = time.monotonic() + PUNCTUATE_INTERVAL
        while not self._stop.is_set():
            self._last_loop = time.monotonic()
            for table in tables:
                table.poll()
            messages = (
                consume(batch_size, timeout)
                if tasks is None
                else tasks.next_batch(self._consumer, batch_size, timeout)
            )
            if messages:
                try:
                    self._process(messages)
                except SinkBackpressure as exc:
                    self._outage.signal(exc)
            if tasks is not None:
                tasks.tick()
            poll(0)
            now = time.monotonic()
            if now >= next_punctuation:
                self._partitions.punctuate(now)
                if self._consumer is not None:
                    self.telemetry.measure_lag(self._consumer, self._partitions.assigned)
                next_punctuation = now + PUNCTUATE_INTERVAL
            if self.checkpoint.due():
                self._commit()
            if self._outage.pending is not None:
                self._back_off()

    def _shutdown(self) -> None:
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        try:
            if not (self._failed or self._fenced) and consumer is not None and producer:
                self._consumer, self._producer = consumer, producer
                self.tasks.drain(None, self.config.shutdown_timeout)
                self._commit()
                self._consumer = self._producer = None
        finally:
            if consumer is not None:
                consumer.close()
            self._partitions.close()
            for sink in self.topology.sinks:
                sink.close()
            for table in self.topology.global_tables:
                table.close()
            if producer is not None and not self._fenced:
                # A fenced producer delivers nothing more, and its flush raises again.
                producer.flush(10)
        log.info(
            "worker stopped: %d in, %d out, %d dead letters, %d late, %d commits",
            self.stats.records_in,
            self.stats.records_out,
            self.stats.dead_letters,
            self.stats.late_records,
            self.stats.commits,
        )

    # -- processing ------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        began = time.perf_counter()
        topics, sources = self.topology.topics, self.topology.sources
        owned, dead_letter, stats = self._partitions, self.collector.dead_letter, self.stats
        counts = stats.topic_records_in
        for topic, partition, run in partition_runs(messages, group=self.topology.app_id):
            stats.records_in += len(run)
            counts[topic] = counts.get(topic, 0) + len(run)
            part = owned.get(topic, partition)
            part.processed(run[-1].offset() + 1)
            # Log records of this run (user code's too) name its partition.
            token = set_partition(topic, partition)
            try:
                rows = deserialize(topics[topic], run, dead_letter)
                if rows:
                    for root in sources[topic]:
                        root.process(rows, part)
            finally:
                reset_partition(token)
        stats.processing_seconds.observe(time.perf_counter() - began)

    # -- checkpoints and rebalances -------------------------------------------------

    def _commit(self) -> None:
        consumer, producer = self._consumer, self._producer
        if consumer is None or producer is None or self._fenced:
            return
        began, commits = time.perf_counter(), self.checkpoint.commits
        try:
            self.checkpoint.commit(consumer, self.collector, self._partitions, self.topology.sinks)
            if self.checkpoint.commits != commits:
                self.stats.commit_seconds.observe(time.perf_counter() - began)
        except SinkBackpressure as exc:
            log.warning("checkpoint not committed: %s", exc)
            self._outage.signal(exc)
            return
        except (TransactionError, DeliveryError) as exc:
            if not self.config.exactly_once:
                raise
            self._abort(exc)
        else:
            self._outage.recovered()
        self.stats.commits = self.checkpoint.commits
        if time.monotonic() >= self._next_purge:
            self._purge_repartition_topics()

    def _purge_repartition_topics(self) -> None:
        """Delete repartition records this worker has consumed and committed."""
        self._next_purge = time.monotonic() + PURGE_INTERVAL
        offsets = self._partitions.purgeable_offsets()
        if offsets:
            try:
                self._admin = self._admin or TopicAdmin(self.settings)
                self._admin.purge(offsets)
            except Exception as exc:
                log.warning("could not purge repartition records: %s", exc)

    def _back_off(self) -> None:
        """A sink cannot write: go back to the last commit, pause input, go on
        (processors/backpressure.py)."""
        assert self._consumer is not None
        pressure, wait = self._outage.take()
        self.stats.sink_pauses += 1
        log.warning(
            "a sink cannot write (%s): back to the last commit, input paused for %.1fs",
            pressure,
            wait,
        )
        if self._transactions is not None:
            self._abort(pressure)
        else:
            for sink in self.topology.sinks:
                sink.discard()
            self._partitions.discard_uncommitted()
            self._partitions.rewind(self._consumer, self.settings.client_timeout)
        pause_input(self._consumer, wait, self._stop, self.tasks.paused)

    def _abort(self, cause: Exception) -> None:
        """Abort the open transaction and rewind to the last committed state and offsets.

        Raises:
            ProducerFenced: the producer cannot go on; the worker must rejoin.
        """
        assert self._producer is not None and self._consumer is not None
        assert self._transactions is not None
        try:
            self._transactions.abort(self._producer, cause)
        except ProducerFenced:
            self._fenced = True
            raise
        self.stats.aborts += 1
        self.collector.forget_failures()
        for sink in self.topology.sinks:
            sink.discard()
        self._partitions.discard_uncommitted()
        self._partitions.rewind(self._consumer, self.settings.client_timeout)
        self._transactions.begin(self._producer)
        self.tasks.after_abort()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.rebalances += 1
        self.stats.partitions_assigned += len(partitions)
        log.info("assigned %s", _describe(partitions))
        if self._consumer is None:
            # The worker is closing its consumer (stopped or fenced): the partitions go
            # back at once, so their state is not restored for nothing.
            consumer.incremental_assign(partitions)
            return
        owned = self._partitions
        if self._transactions is not None and not self._fenced and owned.have_state(partitions):
            # Restores can take seconds: commit first, so the open transaction does
            # not run into its timeout while they do.
            self._commit()
        owned.take(partitions)
        self.tasks.assigned(consumer, partitions)
        self.stats.restored_records = owned.restored_records
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.rebalances += 1
        self.stats.partitions_revoked += len(partitions)
        log.info("revoked %s", _describe(partitions))
        self._partitions.suspend(partitions)
        if not (self._failed or self._fenced) and partitions:
            self.tasks.drain(partitions, self.config.shutdown_timeout)
            self._commit()
        self._partitions.release(partitions, lost=False)
        self.tasks.forget(partitions)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.partitions_lost += len(partitions)
        log.warning("lost %s without a commit; their new owners reprocess", _describe(partitions))
        self._partitions.release(partitions, lost=True)
        self.tasks.forget(partitions)
        consumer.incremental_unassign(partitions)
        if self.config.exactly_once and not self._fenced and self._consumer is not None:
            # The open transaction holds work of the lost partitions: it must not commit.
            # (A closing worker commits nothing more; its successor aborts the transaction.)
            self._abort(TransactionError("partitions were lost"))


def _describe(partitions: list[TopicPartition]) -> str:
    if not partitions:
        return "nothing"
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
