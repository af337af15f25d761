"""What a task's outcome sends: its reply, its retry on the way through a delay tier,
its dead letter, and the completion entry that keeps it from running again.

With exactly-once, every send and completion write of a task partition is also kept
on the partition until its next commit (:attr:`TaskPartition.unsaved`): after an
aborted transaction the runtime sends them again instead of running tasks again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from millstream.kafka import ANY_PARTITION, ConsumedRecord
from millstream.processors.collector import RecordCollector
from millstream.processors.dead_letters import dead_letter_headers
from millstream.processors.tasks.delays import delay_topic, tier_for
from millstream.processors.tasks.envelope import (
    HEADER_ATTEMPTS,
    HEADER_ID,
    HEADER_NAME,
    HEADER_TRACEBACK,
    Delivery,
    TaskEnvelope,
    failure_reply,
    format_traceback,
    now_ms,
)
from millstream.processors.tasks.metrics import TaskMetrics
from millstream.processors.tasks.partition import TaskPartition

#: Replies larger than this are not kept for a task sent again with the same id.
MAX_KEPT_REPLY = 65536


class TaskOutput:
    """Sends through the worker's record collector on behalf of task partitions."""

    def __init__(
        self,
        app_id: str,
        collector: RecordCollector,
        metrics: TaskMetrics,
        stores: dict[str, str],
        *,
        exactly_once: bool,
    ) -> None:
        self.app_id = app_id
        self.collector = collector
        self.metrics = metrics
        #: The completion store's name, by task topic.
        self.stores = stores
        self.exactly_once = exactly_once

    def seen(
        self, part: TaskPartition, store: Any, envelope: TaskEnvelope, delivery: Delivery
    ) -> bool:
        """Whether this delivery of the task was handled already (its sender gets the
        recorded reply again) or is running now."""
        mark = (delivery.replay, delivery.attempts)
        running = part.inflight_ids.get(envelope.id)
        if running is not None and running >= mark:
            return True
        entry = store.get(envelope.id)
        if entry is None or (entry["g"], entry["a"]) < mark:
            return False
        kept = entry.get("r")
        if kept is not None:
            self.reply(part, envelope, kept.encode())
        self.metrics.skipped(envelope.task)
        return True

    def remember(
        self, part: TaskPartition, envelope: TaskEnvelope, delivery: Delivery, reply: bytes | None
    ) -> None:
        kept = reply.decode() if reply is not None and len(reply) <= MAX_KEPT_REPLY else None
        entry = {"g": delivery.replay, "a": delivery.attempts, "t": now_ms(), "r": kept}
        name = self.stores[part.topic]
        part.store(name).set(envelope.id, entry)
        if self.exactly_once:
            part.unsaved_writes.append((name, envelope.id, entry))

    def send(
        self,
        part: TaskPartition | None,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes]] | None,
        partition: int = ANY_PARTITION,
    ) -> None:
        self.collector.send(topic, key, value, now_ms(), headers, partition)
        if part is not None and self.exactly_once:
            part.unsaved.append((topic, key, value, headers, partition))

    def reply(self, part: TaskPartition, envelope: TaskEnvelope, reply: bytes) -> None:
        if envelope.reply is not None:
            topic, partition = envelope.reply
            self.send(part, topic, envelope.id.encode(), reply, None, partition)

    def route(
        self,
        part: TaskPartition | None,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        delivery: Delivery,
        remaining: float,
        headers: Iterable[tuple[str, str | bytes]] | None = None,
    ) -> None:
        """Send a task record on its way to ``topic``: through the delay tier for the time
        it must still wait, or straight there when that is under a second."""
        tier = tier_for(remaining)
        if tier is None:
            self.send(part, topic, key, value, delivery.headers(headers))
            return
        via = Delivery(
            delivery.attempts, delivery.due, delivery.first_failure, delivery.replay, topic
        )
        self.send(part, delay_topic(self.app_id, tier), key, value, via.headers(headers))

    def give_up(
        self,
        part: TaskPartition,
        message: ConsumedRecord,
        error: BaseException,
        envelope: TaskEnvelope,
        delivery: Delivery,
        attempts: int,
    ) -> None:
        """Dead-letter the task, tell its sender it failed, and remember that."""
        self.dead_letter(part, message, error, envelope, attempts)
        reply = failure_reply(envelope.id, envelope.task, error)
        self.reply(part, envelope, reply)
        self.remember(part, envelope, delivery, reply)

    def dead_letter(
        self,
        part: TaskPartition,
        message: ConsumedRecord,
        error: BaseException,
        envelope: TaskEnvelope | None,
        attempts: int,
    ) -> None:
        step, headers = task_dead_letter(message, error, envelope, attempts)
        if envelope is not None:
            self.metrics.dead_lettered(envelope.task)
        self.send(part, self.collector.dlq_topic, message.key(), message.value(), headers)
        self.collector.note_dead_letter(message, error, step)


def task_dead_letter(
    message: ConsumedRecord, error: BaseException, envelope: TaskEnvelope | None, attempts: int
) -> tuple[str, list[tuple[str, str | bytes]]]:
    """The failed step's name and the dead-letter headers of a task record (docs/tasks.md:
    the error, its traceback, and the task's id, name and attempts when it was readable),
    the same in ordered and queue mode."""
    extra: list[tuple[str, str | bytes]] = [(HEADER_TRACEBACK, format_traceback(error))]
    step = f"task({message.topic()})"
    if envelope is not None:
        step = f"task({envelope.task})"
        extra += [
            (HEADER_ID, envelope.id),
            (HEADER_NAME, envelope.task),
            (HEADER_ATTEMPTS, str(attempts)),
        ]
    return step, dead_letter_headers(message, error, step, extra)
