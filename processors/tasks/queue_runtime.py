"""Queue mode: the tasks of a worker's share-group consumer, on a thread of their own.

The share consumer is not thread-safe and, in explicit mode, every record of a poll
must be acknowledged before the next poll. So one thread owns it and loops: poll a
batch (about ``concurrency`` records); start its tasks as slots allow (on the
:class:`TaskRunner`'s threads and event loop); as each ends, send its outputs and,
once they are delivered, acknowledge it (sent to the broker at once with
``commit_async``); poll again when the whole batch is acknowledged. A worker
therefore fetches its next batch when the slowest task of the last one has ended.

There is no lock renewal: an attempt runs at most until ``ACK_MARGIN`` seconds
before its record's lock ends (its ``timeout`` is checked against the lock at
startup), and a record that waited in its batch too long to finish within its lock
is released to be delivered again rather than started.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

from millstream.config import Settings
from millstream.errors import (
    ConfigurationError,
    SerializationError,
    TaskArgumentsError,
    TaskLost,
    TaskNotFoundError,
    TaskTimeout,
)
from millstream.kafka import (
    ACCEPT,
    REJECT,
    RELEASE,
    Producer,
    ShareConsumer,
    SharedRecord,
    acknowledge,
    make_producer,
    make_share_consumer,
    poll_records,
    share_groups_unsupported,
)
from millstream.processors.tasks.definition import AnyTask
from millstream.processors.tasks.envelope import Delivery, TaskEnvelope
from millstream.processors.tasks.metrics import TaskMetrics
from millstream.processors.tasks.queue_completions import QueueCompletions, done_topic
from millstream.processors.tasks.queue_group import (
    ACK_MARGIN,
    ShareGroupLimits,
    prepare_share_group,
    share_group,
)
from millstream.processors.tasks.queue_output import Acquired, QueueOutput
from millstream.processors.tasks.runner import TaskInfo, TaskRunner
from millstream.processors.topology import Topology
from millstream.processors.worker_config import WorkerConfig

log = logging.getLogger("millstream.tasks")

#: Longest block in ``poll`` while nothing runs (the loop's stop latency).
POLL_TIMEOUT = 0.2
#: Longest wait for an outcome or a delivery report while tasks run.
TASK_WAIT = 0.005
#: At most this many acknowledgement commits a second while a batch is open.
ACK_COMMITS_PER_SECOND = 50
#: How long a worker waits for the share group's first answer at startup.
FIRST_POLL = 1.0


class QueueRuntime:
    """Runs the queue-mode tasks of one worker. :meth:`start` and :meth:`close` on the
    worker's thread; everything else on the runtime's own thread."""

    def __init__(
        self,
        app_id: str,
        tasks: Sequence[AnyTask],
        settings: Settings,
        metrics: TaskMetrics,
        *,
        client_id: str,
        shutdown_timeout: float,
        on_failure: Callable[[], None],
    ) -> None:
        self.app_id = app_id
        self.group = share_group(app_id)
        self.settings = settings
        self.metrics = metrics
        self.client_id = client_id
        self.shutdown_timeout = shutdown_timeout
        self.on_failure = on_failure
        self.error: BaseException | None = None
        self._tasks: dict[str, dict[str, AnyTask]] = {}
        for task in tasks:
            self._tasks.setdefault(task.topic, {})[task.name] = task
        self._all = list(tasks)
        self.runner = TaskRunner()
        self._woken = threading.Event()
        self.runner.on_outcome = self._woken.set
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._batch: dict[tuple[str, int, int], Acquired] = {}
        self._waiting: deque[Acquired] = deque()
        self._running: dict[Acquired, None] = {}
        self._slots: Counter[str] = Counter()
        self._acks = 0
        self._next_ack_commit = 0.0
        self.limits = ShareGroupLimits(30.0, 5)
        self._consumer: ShareConsumer | None = None
        self._producer: Producer | None = None
        self._completions = QueueCompletions(
            settings, [done_topic(t) for t in self._tasks], client_id
        )
        self._output: QueueOutput | None = None

    # -- lifecycle (the worker's thread) ----------------------------------------------

    def start(self) -> None:
        """Configure the share group, load the completions, join the group, and start
        the runtime's thread.

        Raises:
            ConfigurationError: the brokers have no share groups (``share.version``), or
                a task's timeout does not fit in the group's record lock.
        """
        self.limits = prepare_share_group(self.settings, self.group, self._all)
        self._completions.start()
        self._producer = make_producer(
            self.settings, client_id=f"{self.client_id}-queue", **{"linger.ms": 1}
        )
        self._output = QueueOutput(
            self.app_id, self._producer, self._completions, self.metrics, self._acknowledge
        )
        most = max(task.concurrency for task in self._all)
        self._consumer = make_share_consumer(
            self.settings, self.group, max_records=most, client_id=f"{self.client_id}-queue"
        )
        self._consumer.subscribe(sorted(self._tasks))
        self._take(self._poll(FIRST_POLL))
        self._thread = threading.Thread(target=self._run, name="millstream-queue", daemon=True)
        self._thread.start()
        log.info("queue tasks: share group %r on %s", self.group, ", ".join(sorted(self._tasks)))

    def close(self) -> None:
        """Stop taking tasks, let running ones finish (up to the shutdown timeout) and
        leave the group; records not finished go to other workers."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.shutdown_timeout + 15)
        else:
            self._leave()
        self.runner.close()

    # -- the loop (the runtime's thread) ----------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._batch:
                    self._take(self._poll(POLL_TIMEOUT))
                self._step()
                if self._batch:
                    self._woken.wait(TASK_WAIT)
                    self._woken.clear()
            self._drain()
        except BaseException as exc:
            self.error = exc
            log.error("queue tasks stopped: %s", exc)
            self.on_failure()
        finally:
            self._leave()

    def _poll(self, timeout: float) -> list[SharedRecord]:
        consumer = self._consumer
        assert consumer is not None
        try:
            return poll_records(consumer, timeout)
        except Exception as exc:
            if share_groups_unsupported(exc):
                raise ConfigurationError(
                    "share.version",
                    "queue-mode tasks need share groups (KIP-932), and the brokers do not "
                    f"offer them ({exc}). Turn the feature on with `kafka-features.sh "
                    "--bootstrap-server <broker> upgrade --feature share.version=1` (Kafka 4.1 "
                    "or later; on by default from 4.2), or declare the tasks with "
                    "mode='ordered'",
                ) from exc
            raise

    def _step(self) -> None:
        for outcome in self.runner.outcomes():
            item = outcome.token
            assert isinstance(item, Acquired)
            self._finished(item, outcome.result, outcome.error)
        self._time_out()
        if not self._stop.is_set():
            self._start_ready()
        assert self._producer is not None
        self._producer.poll(0)
        self._completions.poll()
        self._commit_acks()

    def _commit_acks(self) -> None:
        now = time.monotonic()
        if self._acks and self._batch and now >= self._next_ack_commit and self._consumer:
            self._consumer.commit_async()
            self._acks = 0
            self._next_ack_commit = now + 1.0 / ACK_COMMITS_PER_SECOND

    def _drain(self) -> None:
        """Give back what has not started; wait for what runs, up to the shutdown timeout."""
        output = self._output
        assert output is not None and self._producer is not None
        while self._waiting:
            output.settle(self._waiting.popleft(), RELEASE)
        deadline = time.monotonic() + self.shutdown_timeout
        while self._running and time.monotonic() < deadline:
            self._step()
            self._woken.wait(0.05)
            self._woken.clear()
        for item in list(self._running):
            output.settle(item, RELEASE)
        self._producer.flush(10)

    def _leave(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                consumer.close()
            except Exception as exc:
                log.warning("closing the share consumer: %s", exc)
        if self._producer is not None:
            self._producer.flush(10)
        self._completions.close()

    # -- taking a batch ------------------------------------------------------------------

    def _take(self, messages: list[SharedRecord]) -> None:
        now = time.monotonic()
        items = []
        for message in messages:
            if message.error() is not None:
                log.warning("share consumer: %s", message.error())
                continue
            item = Acquired(message, now)
            self._batch[item.key] = item
            items.append(item)
        if any((item.message.delivery_count() or 1) > 1 for item in items):
            # Delivered again: its worker may have finished it before dying. Read every
            # completion written so far before deciding.
            self._completions.catch_up(self.settings.client_timeout)
        for item in items:
            self._admit(item)

    def _admit(self, item: Acquired) -> None:
        output = self._output
        assert output is not None
        message = item.message
        try:
            item.envelope = TaskEnvelope.decode(message.value())
            item.delivery = Delivery.of(message.headers())
        except SerializationError as exc:
            output.dead_letter(item, exc, 0)
            output.settle(item, REJECT)
            return
        envelope, delivery = item.envelope, item.delivery
        running = [
            (r.delivery.replay, r.delivery.attempts)
            for r in self._running
            if r.envelope is not None and r.envelope.id == envelope.id
        ]
        if output.seen(item, running):
            output.settle(item, ACCEPT)
            return
        item.task = self._tasks.get(item.key[0], {}).get(envelope.task)
        if item.task is None:
            missing = TaskNotFoundError(f"no task {envelope.task!r} in app {self.app_id!r}")
            output.reject(item, missing, delivery.attempts)
            return
        lost = self._lost(item, item.task)
        if lost is not None:
            output.reject(item, lost, delivery.attempts + (message.delivery_count() or 1) - 1)
            return
        item.due = delivery.due / 1000.0
        wait = item.due - time.time()
        if wait >= 1.0:
            output.route(item, delivery, wait)
            output.settle(item, ACCEPT)
            return
        self._waiting.append(item)
        self.metrics.queued(envelope.task)

    def _lost(self, item: Acquired, task: AnyTask) -> TaskLost | None:
        """Why ``item`` is dead-lettered rather than run: its earlier deliveries all ended
        without an outcome, ``retries + 1`` of them, or this is the broker's last."""
        count = item.message.delivery_count() or 1
        if count == 1 or (count <= task.policy.retries + 1 and count < self.limits.delivery_limit):
            return None
        return TaskLost(
            f"task {task.name!r} was delivered {count} times without an outcome: its "
            "workers died, or its record lock ran out while it ran"
        )

    # -- running -------------------------------------------------------------------------

    def _start_ready(self) -> None:
        if not self._waiting:
            return
        now, clock = time.time(), time.monotonic()
        held: deque[Acquired] = deque()
        while self._waiting:
            item = self._waiting.popleft()
            task = item.task
            assert task is not None
            if self._slots[task.name] >= task.concurrency or item.due > now:
                held.append(item)
                continue
            self._start(item, task, clock)
        self._waiting = held

    def _start(self, item: Acquired, task: AnyTask, clock: float) -> None:
        output, envelope = self._output, item.envelope
        assert output is not None and envelope is not None
        lock_ends = item.acquired + self.limits.lock - ACK_MARGIN
        needed = task.timeout if task.timeout is not None else (lock_ends - item.acquired) / 2
        if clock + needed > lock_ends:
            # It waited in its batch too long to finish within its lock: another worker
            # gets it, rather than both running it.
            output.settle(item, RELEASE)
            return
        try:
            bound = task.bind(envelope.args, envelope.kwargs)
        except TaskArgumentsError as exc:
            output.reject(item, exc, item.delivery.attempts)
            return
        item.started = clock
        item.deadline = min(lock_ends, clock + task.timeout) if task.timeout else lock_ends
        self._slots[task.name] += 1
        self._running[item] = None
        self.metrics.started(task.name, clock - item.acquired)
        info = TaskInfo(envelope.id, task.name, item.delivery.attempts, item.message.key())
        self.runner.run(
            item,
            task.fn,
            bound.args,
            bound.kwargs,
            info,
            is_async=task.is_async,
            timeout=item.deadline - clock if task.is_async else None,
        )

    def _finished(self, item: Acquired, result: Any, error: BaseException | None) -> None:
        task = item.task
        assert task is not None
        self._slots[task.name] -= 1
        if item.abandoned:
            return
        self._running.pop(item, None)
        self._output_of().conclude(item, task, result, error)

    def _time_out(self) -> None:
        clock = time.monotonic()
        for item in list(self._running):
            if not item.abandoned and clock > item.deadline:
                item.abandoned = True
                self._running.pop(item, None)
                task = item.task
                assert task is not None
                limit = item.deadline - item.started
                error = TaskTimeout(
                    f"task {task.name!r} ran past its timeout of {limit:g}s"
                    + ("" if task.timeout else " (its record lock, less the margin)")
                )
                self._output_of().conclude(item, task, None, error)

    def _output_of(self) -> QueueOutput:
        assert self._output is not None
        return self._output

    def _acknowledge(self, item: Acquired) -> None:
        """Called by the output once ``item``'s outputs are delivered."""
        if self._batch.pop(item.key, None) is None:
            return
        consumer = self._consumer
        if consumer is not None and item.ack is not None:
            try:
                acknowledge(consumer, item.message, item.ack)
                self._acks += 1
            except Exception as exc:
                # Its lock ran out (or the consumer left): the broker delivers it again.
                log.warning("could not acknowledge task record %s: %s", item.key, exc)


def queue_runtime(
    topology: Topology,
    settings: Settings,
    config: WorkerConfig,
    metrics: TaskMetrics,
    client_id: str,
    on_failure: Callable[[], None],
) -> QueueRuntime | None:
    """The runtime of the queue-mode tasks of ``topology``, None when it has none."""
    tasks = [task for task in topology.tasks.values() if task.mode == "queue"]
    if not tasks:
        return None
    return QueueRuntime(
        topology.app_id,
        tasks,
        settings,
        metrics,
        client_id=client_id,
        shutdown_timeout=config.shutdown_timeout,
        on_failure=on_failure,
    )
