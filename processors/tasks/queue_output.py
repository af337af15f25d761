"""What the outcome of a queue-mode delivery sends, and when its record is acknowledged.

The records are those of ordered mode (a reply, a retry through a delay tier, a dead
letter with the same headers) plus a completion entry on the task topic's
``-done`` topic. A delivery is acknowledged only once all of them are delivered:
ACCEPT when the task succeeded, was retried (its retry is a new record) or had
finished already; REJECT when it was dead-lettered; RELEASE when an output could
not be delivered, so that the task runs again rather than being lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from millstream.errors import SerializationError
from millstream.kafka import (
    ACCEPT,
    ANY_PARTITION,
    REJECT,
    RELEASE,
    AcknowledgeType,
    Producer,
    SharedRecord,
    produce_when_room,
)
from millstream.processors.tasks.definition import AnyTask
from millstream.processors.tasks.delays import delay_topic, tier_for
from millstream.processors.tasks.envelope import (
    Delivery,
    TaskEnvelope,
    failure_reply,
    now_ms,
    success_reply,
    to_json,
)
from millstream.processors.tasks.metrics import TaskMetrics
from millstream.processors.tasks.output import task_dead_letter
from millstream.processors.tasks.queue_completions import QueueCompletions, done_topic

log = logging.getLogger("millstream.tasks")

#: Replies larger than this are not kept for a task sent again with the same id.
MAX_KEPT_REPLY = 65536


@dataclass(eq=False)
class Acquired:
    """One delivered task record, from its poll until it is acknowledged."""

    message: SharedRecord
    #: Monotonic seconds when its poll returned (its lock started about then).
    acquired: float
    envelope: TaskEnvelope | None = None
    delivery: Delivery = field(default_factory=Delivery)
    task: AnyTask | None = None
    #: Epoch seconds before which it must not start.
    due: float = 0.0
    started: float = 0.0
    #: Monotonic seconds after which the attempt is reported failed (TaskTimeout).
    deadline: float = 0.0
    #: Outputs produced and not yet delivered.
    outstanding: int = 0
    #: The acknowledgement once the outcome is decided (None while it is not).
    ack: AcknowledgeType | None = None
    #: The attempt was reported timed out; its function has not returned yet.
    abandoned: bool = False

    @property
    def key(self) -> tuple[str, int, int]:
        message = self.message
        return (message.topic(), message.partition(), message.offset())


class QueueOutput:
    """Sends the outputs of queue-mode deliveries through one producer and hands each
    delivery to ``acknowledge`` when its outputs are delivered. One thread only."""

    def __init__(
        self,
        app_id: str,
        producer: Producer,
        completions: QueueCompletions,
        metrics: TaskMetrics,
        acknowledge: Callable[[Acquired], None],
    ) -> None:
        self.app_id = app_id
        self.dlq_topic = f"{app_id}-dlq"
        self.producer = producer
        self.completions = completions
        self.metrics = metrics
        self._acknowledge = acknowledge

    # -- sending ---------------------------------------------------------------------

    def send(
        self,
        item: Acquired,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes]] | None = None,
        partition: int = ANY_PARTITION,
    ) -> None:
        def delivered(error: Any, _message: Any) -> None:
            item.outstanding -= 1
            if error is not None:
                log.error("an output of task record %s was not delivered: %s", item.key, error)
                item.ack = RELEASE
            self._maybe_acknowledge(item)

        item.outstanding += 1
        produce_when_room(self.producer, topic, value, key, partition, now_ms(), headers, delivered)

    def settle(self, item: Acquired, ack: AcknowledgeType) -> None:
        """The outcome of ``item`` is decided: acknowledge it with ``ack`` once its
        outputs are delivered (at once when it has none)."""
        if item.ack != RELEASE:
            item.ack = ack
        self._maybe_acknowledge(item)

    def _maybe_acknowledge(self, item: Acquired) -> None:
        if item.ack is not None and item.outstanding == 0:
            self._acknowledge(item)

    # -- outcomes ----------------------------------------------------------------------

    def conclude(
        self, item: Acquired, task: AnyTask, result: Any, error: BaseException | None
    ) -> None:
        """The attempt of ``item`` returned ``result`` or raised ``error``: reply and
        ACCEPT, retry through the delay tiers and ACCEPT, or dead-letter and REJECT."""
        envelope = item.envelope
        assert envelope is not None
        elapsed = time.monotonic() - item.started
        if error is None:
            try:
                reply = success_reply(envelope.id, envelope.task, result)
            except TypeError as exc:
                error = SerializationError(f"the result of task {task.name!r} is not JSON: {exc}")
            else:
                self.reply(item, envelope, reply)
                self.remember(item, envelope, item.delivery, reply)
                self.metrics.succeeded(task.name, elapsed)
                self.settle(item, ACCEPT)
                return
        self.metrics.failed(task.name, elapsed)
        attempts = item.delivery.attempts + 1
        retriable = not isinstance(error, SerializationError)
        if retriable and task.policy.retries_on(error, attempts):
            wait = task.policy.delay(attempts)
            now, delivery = now_ms(), item.delivery
            retry = Delivery(
                attempts, now + int(wait * 1000), delivery.first_failure or now, delivery.replay
            )
            self.route(item, retry, wait)
            self.remember(item, envelope, delivery, None)
            self.metrics.retried(task.name)
            self.settle(item, ACCEPT)
            return
        self.reject(item, error, attempts)

    def reject(self, item: Acquired, error: BaseException, attempts: int) -> None:
        """Dead-letter ``item`` (after ``attempts``) and REJECT it once that is delivered."""
        self.give_up(item, error, attempts)
        self.settle(item, REJECT)

    def reply(self, item: Acquired, envelope: TaskEnvelope, reply: bytes) -> None:
        if envelope.reply is not None:
            topic, partition = envelope.reply
            self.send(item, topic, envelope.id.encode(), reply, None, partition)

    def remember(
        self, item: Acquired, envelope: TaskEnvelope, delivery: Delivery, reply: bytes | None
    ) -> None:
        """Write the completion entry of this attempt (and keep it in this worker's copy)."""
        kept = reply.decode() if reply is not None and len(reply) <= MAX_KEPT_REPLY else None
        entry = {"g": delivery.replay, "a": delivery.attempts, "t": now_ms(), "r": kept}
        topic = done_topic(item.key[0])
        self.completions.put(topic, envelope.id, entry)
        self.send(item, topic, envelope.id.encode(), to_json(entry))

    def route(
        self,
        item: Acquired,
        delivery: Delivery,
        remaining: float,
    ) -> None:
        """Send the task's record on its way back to its topic, through the delay tier
        for the time it must still wait (straight back when that is under a second)."""
        message = item.message
        topic, key, value = message.topic() or "", message.key(), message.value()
        tier = tier_for(remaining)
        if tier is None:
            self.send(item, topic, key, value, delivery.headers(message.headers()))
            return
        via = Delivery(
            delivery.attempts, delivery.due, delivery.first_failure, delivery.replay, topic
        )
        self.send(item, delay_topic(self.app_id, tier), key, value, via.headers(message.headers()))

    def give_up(self, item: Acquired, error: BaseException, attempts: int) -> None:
        """Dead-letter the task, tell its sender it failed, and remember that."""
        envelope = item.envelope
        assert envelope is not None
        self.dead_letter(item, error, attempts)
        reply = failure_reply(envelope.id, envelope.task, error)
        self.reply(item, envelope, reply)
        self.remember(item, envelope, item.delivery, reply)

    def dead_letter(self, item: Acquired, error: BaseException, attempts: int) -> None:
        message, envelope = item.message, item.envelope
        _, headers = task_dead_letter(message, error, envelope, attempts)
        if envelope is not None:
            self.metrics.dead_lettered(envelope.task)
        self.send(item, self.dlq_topic, message.key(), message.value(), headers)
        log.warning("task record %s dead-lettered: %s", item.key, error)

    def seen(self, item: Acquired, running: Iterable[tuple[int, int]]) -> bool:
        """Whether this delivery was handled already (its sender gets the recorded reply
        again) or runs on this worker now (``running``: the marks of that id here)."""
        envelope, delivery = item.envelope, item.delivery
        assert envelope is not None
        mark = (delivery.replay, delivery.attempts)
        if any(other >= mark for other in running):
            return True
        entry = self.completions.get(done_topic(item.key[0]), envelope.id)
        if entry is None or (entry["g"], entry["a"]) < mark:
            return False
        kept = entry.get("r")
        if kept is not None:
            self.reply(item, envelope, kept.encode())
        self.metrics.skipped(envelope.task)
        return True


__all__ = ["ACCEPT", "RELEASE", "Acquired", "QueueOutput"]
