"""The task runtime of one worker: takes task records from their partitions, runs
them, and turns each outcome into Kafka records (a reply, a retry through a delay
tier, or a dead letter) and a completion.

Everything here runs on the worker's thread, between two ``consume`` calls
(:meth:`TaskRuntime.tick`); task functions run on the :class:`TaskRunner`'s threads
and event loop. All records go through the worker's record collector, so with
exactly-once they join the worker's transaction, with the completions and offsets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from millstream.errors import (
    SerializationError,
    TaskArgumentsError,
    TaskNotFoundError,
    TaskTimeout,
)
from millstream.kafka import ConsumedRecord, Consumer, Message, TopicPartition
from millstream.processors.assigned import AssignedPartition
from millstream.processors.collector import RecordCollector
from millstream.processors.partitions import OwnedPartitions
from millstream.processors.rows import Row
from millstream.processors.tasks.definition import AnyTask
from millstream.processors.tasks.delays import DelayPartition, due_at
from millstream.processors.tasks.envelope import (
    Delivery,
    TaskEnvelope,
    now_ms,
    success_reply,
)
from millstream.processors.tasks.metrics import TaskMetrics
from millstream.processors.tasks.output import TaskOutput
from millstream.processors.tasks.partition import MAX_BUFFERED, Pending, Running, TaskPartition
from millstream.processors.tasks.runner import TaskInfo, TaskRunner
from millstream.processors.tasks.steps import DelayStep, TaskStep

log = logging.getLogger("millstream.tasks")

#: Longest wait for a task outcome while tasks run and no records came.
TASK_WAIT = 0.005


class TaskRuntime:
    """Dispatches the tasks of the partitions a worker owns. The worker's thread only,
    except :meth:`wake`."""

    def __init__(
        self,
        app_id: str,
        steps: Iterable[TaskStep | DelayStep],
        collector: RecordCollector,
        *,
        exactly_once: bool,
    ) -> None:
        self.app_id = app_id
        self.collector = collector
        self.exactly_once = exactly_once
        self.runner = TaskRunner()
        self.metrics = TaskMetrics({"app_id": app_id})
        self._stores: dict[str, str] = {}
        self._woken = threading.Event()
        self.runner.on_outcome = self._woken.set
        self._consumer: Consumer | None = None
        self._owned: OwnedPartitions | None = None
        self._tasks: dict[str, dict[str, AnyTask]] = {}
        self._tiers: dict[str, float] = {}
        self._delays: dict[tuple[str, int], float] = {}
        #: Partitions this runtime paused on the consumer.
        self._paused: set[tuple[str, int]] = set()
        for step in steps:
            step.runtime = self
            if isinstance(step, TaskStep):
                self._tasks[step.source] = step.tasks
                self._stores[step.source] = step.store_name
            else:
                self._tiers[step.topic.name] = step.wait
        self.output = TaskOutput(
            app_id, collector, self.metrics, self._stores, exactly_once=exactly_once
        )

    # -- the worker's hooks -------------------------------------------------------------

    def attach(self, consumer: Consumer | None, owned: OwnedPartitions) -> None:
        """Pause and resume through ``consumer`` (None: no broker, as in tests)."""
        self._consumer, self._owned = consumer, owned
        self._delays.clear()
        self._paused.clear()

    def close(self) -> None:
        self.runner.close()

    @property
    def paused(self) -> frozenset[tuple[str, int]]:
        """The partitions this runtime holds paused (delay tiers, back-pressure)."""
        return frozenset(self._paused)

    @property
    def busy(self) -> bool:
        """Whether tasks are running or waiting: the worker then polls briefly."""
        return any(p.buffered for p in self._task_partitions())

    def next_batch(self, consumer: Consumer, size: int, timeout: float) -> list[Message]:
        """The next batch of a worker with tasks, without the wait for a full batch that
        ``consume`` makes: a waiting task sender waits for that too. While tasks run, an
        empty poll waits for their outcomes (up to :data:`TASK_WAIT`) instead."""
        messages = consumer.consume(size, 0)
        if messages:
            return messages
        if self.busy:
            self.wait(TASK_WAIT)
            return []
        first = consumer.poll(timeout)
        return [first] if first is not None else []

    def wait(self, timeout: float) -> None:
        """Block until an outcome arrives or ``timeout`` passes."""
        self._woken.wait(timeout)
        self._woken.clear()

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start the completions of newly owned task partitions from their commits (the
        offset, and the offsets done above it in the metadata)."""
        mine = [tp for tp in partitions if tp.topic in self._tasks]
        if not mine or self._owned is None:
            return
        try:
            committed = consumer.committed(
                [TopicPartition(tp.topic, tp.partition) for tp in mine], timeout=10
            )
        except Exception as exc:
            # Without them the partition starts where the group says; tasks finished
            # above that run again unless their completion entries say otherwise.
            log.warning("could not read the commits of task partitions: %s", exc)
            return
        for answer, tp in zip(committed, mine, strict=True):
            part = self._owned.assigned.get((tp.topic, tp.partition))
            if isinstance(part, TaskPartition) and answer.error is None and answer.offset >= 0:
                part.start_completions(answer.offset, answer.metadata)
                tp.offset = answer.offset

    def tick(self, *, start: bool = True) -> None:
        """Apply finished attempts, time out overdue ones, start what may start, forward
        due delayed records and pause or resume input by how full partitions are."""
        for outcome in self.runner.outcomes():
            running = outcome.token
            assert isinstance(running, Running)
            self._finished(running, outcome.result, outcome.error)
        now = time.time()
        for part in self._task_partitions():
            self._time_out(part, now)
            if start:
                for pending in part.runnable(now, self._slots(part)):
                    self._start(part, pending)
            self._flow(part)
        for (topic, partition), until in list(self._delays.items()):
            if until <= now:
                tier = self._owned.assigned.get((topic, partition)) if self._owned else None
                if isinstance(tier, DelayPartition):
                    self._release(tier, now)
                else:
                    del self._delays[(topic, partition)]

    def drain(self, partitions: list[TopicPartition] | None, timeout: float) -> None:
        """Start nothing more in ``partitions`` (all when None) and wait up to
        ``timeout`` seconds for their running tasks, applying their outcomes."""
        wanted = None if partitions is None else {(tp.topic, tp.partition) for tp in partitions}
        parts = [
            p for p in self._task_partitions() if wanted is None or (p.topic, p.partition) in wanted
        ]
        for part in parts:
            dropped = part.drop_waiting()
            if dropped:
                log.info("%s: %d tasks not started go to the next owner", part, dropped)
        deadline = time.monotonic() + timeout
        while any(not r.abandoned for p in parts for r in p.running.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                running = sum(len(p.running) for p in parts)
                log.warning(
                    "%d tasks still running after %gs; they run again elsewhere", running, timeout
                )
                return
            self.wait(min(remaining, 0.1))
            self.tick(start=False)
            self.collector.producer.poll(0)

    def forget(self, partitions: list[TopicPartition]) -> None:
        """The partitions are no longer owned: their outcomes still to come are dropped,
        and those paused are resumed (a partition assigned again starts fetching)."""
        for tp in partitions:
            self._delays.pop((tp.topic, tp.partition), None)
            self._resume(tp.topic, tp.partition)

    def after_abort(self) -> None:
        """Send again, in the new transaction, what task partitions had sent since their
        last commit; resume delay partitions (the worker rewound them)."""
        for part in self._task_partitions():
            store = part.store(self._stores[part.topic])
            for topic, key, value, headers, partition in part.unsaved:
                self.collector.send(topic, key, value, now_ms(), headers, partition)
            for _, task_id, entry in part.unsaved_writes:
                store.set(task_id, entry)
        for topic, partition in list(self._delays):
            self._resume(topic, partition)
        self._delays.clear()

    # -- input (called by the steps) ----------------------------------------------------

    def accept(self, part: TaskPartition, rows: list[Row]) -> None:
        """Queue the task records of a run of ``part``; skip those done already."""
        if part.completions is None and rows:
            part.start_completions(rows[0][3].offset(), None)
        tasks, store = self._tasks[part.topic], part.store(self._stores[part.topic])
        completions = part.completions
        assert completions is not None
        now = time.monotonic()
        for row in rows:
            message = row[3]
            offset = message.offset()
            part.consumed(offset)
            if completions.is_done(offset):
                continue
            try:
                envelope = TaskEnvelope.decode(message.value())
                delivery = Delivery.of(message.headers())
            except SerializationError as exc:
                self.output.dead_letter(part, message, exc, None, 0)
                part.done(offset)
                continue
            if self.output.seen(part, store, envelope, delivery):
                part.done(offset)
                continue
            if envelope.task not in tasks:
                error = TaskNotFoundError(f"no task {envelope.task!r} in app {self.app_id!r}")
                self.output.give_up(part, message, error, envelope, delivery, delivery.attempts)
                part.done(offset)
                continue
            due = delivery.due / 1000.0
            if due - time.time() >= 1.0:
                # Not due for a while (sent here directly, or clocks disagree): it waits
                # in the delay tiers, not in this partition's memory.
                topic, key, value = message.topic() or "", message.key(), message.value()
                wait = due - time.time()
                self.output.route(part, topic, key, value, delivery, wait, message.headers())
                part.done(offset)
                continue
            part.add(Pending(offset, message.key(), envelope, delivery, message, due, now))
            self.metrics.queued(envelope.task)

    def delay(self, part: DelayPartition, rows: list[Row]) -> None:
        """Forward the due records of a run of a delay tier; hold the rest and pause."""
        if part.held:
            part.hold([row[3] for row in rows])
            return
        wait, now = self._tiers[part.topic], time.time()
        for i, row in enumerate(rows):
            due = due_at(row[3], wait)
            if due > now:
                part.hold([r[3] for r in rows[i:]])
                self._pause_until(part, due)
                return
            self._forward(row[3], now)

    # -- running ------------------------------------------------------------------------

    def _slots(self, part: TaskPartition) -> Callable[[str], int]:
        tasks = self._tasks[part.topic]

        def slots(name: str) -> int:
            task = tasks.get(name)
            return task.concurrency if task is not None else 1

        return slots

    def _start(self, part: TaskPartition, pending: Pending) -> None:
        task, envelope = self._task(pending), pending.envelope
        try:
            bound = task.bind(envelope.args, envelope.kwargs)
        except TaskArgumentsError as exc:
            part.free_slot(task.name)
            delivery = pending.delivery
            self.output.give_up(part, pending.message, exc, envelope, delivery, delivery.attempts)
            part.done(pending.offset)
            part.finished(pending)
            return
        started = time.monotonic()
        deadline = None if task.timeout is None or task.is_async else started + task.timeout
        running = Running(pending, part, started, deadline)
        part.running[pending.offset] = running
        self.metrics.started(task.name, started - pending.queued_at)
        info = TaskInfo(envelope.id, task.name, pending.delivery.attempts, pending.key)
        self.runner.run(
            running,
            task.fn,
            bound.args,
            bound.kwargs,
            info,
            is_async=task.is_async,
            timeout=task.timeout,
        )

    def _finished(self, running: Running, result: Any, error: BaseException | None) -> None:
        pending, part = running.pending, running.part
        task = self._task(pending)
        part.free_slot(task.name)
        elapsed = time.monotonic() - running.started
        if not self._owns(part) or running.abandoned:
            part.running.pop(pending.offset, None)
            return
        part.running.pop(pending.offset, None)
        self._conclude(part, pending, task, result, error, elapsed)

    def _time_out(self, part: TaskPartition, now: float) -> None:
        clock = time.monotonic()
        for running in part.running.values():
            if running.deadline is not None and not running.abandoned and clock > running.deadline:
                running.abandoned = True
                task = self._task(running.pending)
                error = TaskTimeout(f"task {task.name!r} ran past its timeout of {task.timeout}s")
                self._conclude(part, running.pending, task, None, error, clock - running.started)

    def _conclude(
        self,
        part: TaskPartition,
        pending: Pending,
        task: AnyTask,
        result: Any,
        error: BaseException | None,
        elapsed: float,
    ) -> None:
        envelope, delivery = pending.envelope, pending.delivery
        if error is None:
            try:
                reply = success_reply(envelope.id, envelope.task, result)
            except TypeError as exc:
                error = SerializationError(f"the result of task {task.name!r} is not JSON: {exc}")
            else:
                self.output.reply(part, envelope, reply)
                self.output.remember(part, envelope, delivery, reply)
                self.metrics.succeeded(task.name, elapsed)
        if error is not None:
            self._failed(part, pending, task, error, elapsed)
        part.done(pending.offset)
        part.finished(pending)

    def _failed(
        self,
        part: TaskPartition,
        pending: Pending,
        task: AnyTask,
        error: BaseException,
        elapsed: float,
    ) -> None:
        envelope, delivery, message = pending.envelope, pending.delivery, pending.message
        attempts = delivery.attempts + 1
        self.metrics.failed(task.name, elapsed)
        retriable = not isinstance(error, SerializationError)
        if retriable and task.policy.retries_on(error, attempts):
            wait = task.policy.delay(attempts)
            now = now_ms()
            retry = Delivery(
                attempts, now + int(wait * 1000), delivery.first_failure or now, delivery.replay
            )
            topic, key, value = message.topic() or "", message.key(), message.value()
            self.output.route(part, topic, key, value, retry, wait, message.headers())
            self.output.remember(part, envelope, delivery, None)
            self.metrics.retried(task.name)
            return
        self.output.give_up(part, message, error, envelope, delivery, attempts)

    # -- delay tiers --------------------------------------------------------------------

    def _forward(self, message: ConsumedRecord, now: float) -> None:
        try:
            delivery = Delivery.of(message.headers())
            if not delivery.target:
                raise SerializationError("a delay-tier record without millstream.task.topic")
        except SerializationError as exc:
            self.collector.dead_letter(message, exc, f"delay({message.topic()})")
            return
        remaining = delivery.due / 1000.0 - now
        onward = Delivery(delivery.attempts, delivery.due, delivery.first_failure, delivery.replay)
        self.output.route(
            None,
            delivery.target,
            message.key(),
            message.value(),
            onward,
            remaining,
            message.headers(),
        )

    def _release(self, part: DelayPartition, now: float) -> None:
        wait = self._tiers[part.topic]
        while part.held:
            due = due_at(part.held[0], wait)
            if due > now:
                self._delays[(part.topic, part.partition)] = due
                return
            self._forward(part.forwarded(), now)
        del self._delays[(part.topic, part.partition)]
        self._resume(part.topic, part.partition)

    def _pause_until(self, part: DelayPartition, due: float) -> None:
        self._delays[(part.topic, part.partition)] = due
        self._pause(part.topic, part.partition)

    def _pause(self, topic: str, partition: int) -> None:
        if (topic, partition) not in self._paused:
            self._paused.add((topic, partition))
            if self._consumer is not None:
                self._consumer.pause([TopicPartition(topic, partition)])

    def _resume(self, topic: str, partition: int) -> None:
        if (topic, partition) in self._paused:
            self._paused.discard((topic, partition))
            if self._consumer is not None:
                self._consumer.resume([TopicPartition(topic, partition)])

    # -- helpers ------------------------------------------------------------------------

    def _flow(self, part: TaskPartition) -> None:
        key = (part.topic, part.partition)
        if key not in self._paused and part.full:
            self._pause(*key)
        elif key in self._paused and part.buffered < MAX_BUFFERED // 2 and not part.full:
            self._resume(*key)

    def _task(self, pending: Pending) -> AnyTask:
        return self._tasks[pending.message.topic() or ""][pending.envelope.task]

    def _owns(self, part: AssignedPartition) -> bool:
        owned = self._owned
        return owned is not None and owned.assigned.get((part.topic, part.partition)) is part

    def _task_partitions(self) -> list[TaskPartition]:
        owned = self._owned
        if owned is None:
            return []
        return [p for p in owned.assigned.values() if isinstance(p, TaskPartition)]
