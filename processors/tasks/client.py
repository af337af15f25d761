"""Publishing tasks and waiting for their results, from any process.

A :class:`TaskClient` belongs to an App and starts on its first send: one
idempotent producer for task records and one thread that reads this process's
partition of the reply topic (picked at random, read from its end as it was at
start) and serves the producer's delivery reports. A :class:`TaskHandle` waits
for the reply of its task; replies nobody holds a handle for are dropped, so a
process that sends and forgets keeps nothing.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import random
import threading
import time
import weakref
from typing import Any, Generic, TypeVar

import orjson

from millstream.config import Settings
from millstream.errors import (
    DeliveryError,
    KafkaError,
    TaskFailed,
    TaskTimeout,
    TopicNotFoundError,
)
from millstream.kafka import (
    Consumer,
    TopicAdmin,
    TopicPartition,
    TopicSpec,
    from_exception,
    make_consumer,
)
from millstream.processors.tasks.delays import delay_topic, tier_for
from millstream.processors.tasks.envelope import Delivery, TaskEnvelope, now_ms
from millstream.producers import Delivery as PublishDelivery
from millstream.producers import Publisher

log = logging.getLogger("millstream.tasks")

R = TypeVar("R")

#: Partitions of the reply topic, and how long replies are kept.
REPLY_PARTITIONS = 8
REPLY_RETENTION_MS = 3_600_000
#: Errors of a topic created a moment ago, whose partitions have no leader yet.
_NOT_READY = frozenset(
    {
        "NOT_LEADER_FOR_PARTITION",
        "LEADER_NOT_AVAILABLE",
        "UNKNOWN_TOPIC_OR_PART",
        "_UNKNOWN_PARTITION",
    }
)
#: Partitions of each delay tier topic.
DELAY_PARTITIONS = 8


def reply_topic(app_id: str) -> str:
    return f"{app_id}-replies"


class _Slot:
    """Where the reply of one task lands: waited on by threads and event loops."""

    __slots__ = ("__weakref__", "event", "reply", "waiters")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: dict[str, Any] | None = None
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def fill(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.event.set()
        for loop, future in self.waiters:
            loop.call_soon_threadsafe(_settle, future)
        self.waiters.clear()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class TaskHandle(Generic[R]):
    """A sent task: its ``id``, and its result once a worker has run it."""

    def __init__(self, task_id: str, task: str, slot: _Slot, delivery: PublishDelivery) -> None:
        self.id = task_id
        self.task = task
        self._slot = slot
        self._delivery = delivery

    def sent(self, timeout: float | None = None) -> None:
        """Wait until Kafka has the task record.

        Raises:
            DeliveryError: it could not be delivered.
        """
        self._delivery.result(timeout)

    async def sent_async(self) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._delivery.add_done_callback(lambda _: loop.call_soon_threadsafe(_settle, future))
        await future
        error = self._delivery.exception(0)
        if error is not None:
            raise error

    def result(self, timeout: float | None = None) -> R:
        """The task's return value, waiting up to ``timeout`` seconds (None: for ever).

        Raises:
            TaskFailed: the task raised on its last attempt (remote type, message, traceback).
            TaskTimeout: no result within ``timeout``.
            DeliveryError: the task record could not be delivered.
        """
        if not self._slot.event.wait(timeout):
            self._check_delivery()
            raise TaskTimeout(f"no result of task {self.task}[{self.id}] within {timeout}s")
        return self._outcome()

    async def result_async(self, timeout: float | None = None) -> R:
        """:meth:`result` for asyncio code."""
        slot = self._slot
        if slot.reply is None:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            slot.waiters.append((loop, future))
            if slot.reply is not None:  # it came while the waiter was being added
                _settle(future)
            try:
                await asyncio.wait_for(future, timeout)
            except TimeoutError:
                self._check_delivery()
                raise TaskTimeout(
                    f"no result of task {self.task}[{self.id}] within {timeout}s"
                ) from None
        return self._outcome()

    def _check_delivery(self) -> None:
        if self._delivery.done():
            error = self._delivery.exception(0)
            if error is not None:
                raise error

    def _outcome(self) -> R:
        reply = self._slot.reply
        assert reply is not None
        if reply.get("status") == "succeeded":
            result: R = reply["result"]
            return result
        error = reply.get("error") or {}
        raise TaskFailed(
            self.id,
            self.task,
            str(error.get("type", "unknown")),
            str(error.get("message", "")),
            str(error.get("traceback", "")),
        )

    def __repr__(self) -> str:
        return f"<TaskHandle {self.task}[{self.id}]>"


class TaskClient:
    """Sends tasks of one app and routes their replies to handles. Thread-safe."""

    def __init__(self, app_id: str, settings: Settings) -> None:
        self.app_id = app_id
        self.settings = settings
        self._lock = threading.Lock()
        self._publisher: Publisher | None = None
        #: The publisher of queue-mode tasks: one record per batch.
        self._single: Publisher | None = None
        self._consumer: Consumer | None = None
        self._reply_to: tuple[str, int] | None = None
        self._slots: weakref.WeakValueDictionary[str, _Slot] = weakref.WeakValueDictionary()
        self._ready: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(
        self,
        topic: str,
        envelope: TaskEnvelope,
        key: str | bytes | None,
        delay: float,
        partitions: int,
        *,
        queue: bool = False,
    ) -> TaskHandle[Any]:
        """Publish a task record (to a delay tier first when ``delay`` is a second or
        more) and return its handle. Records of ``queue`` tasks go out one per record
        batch: a share group hands out whole batches, so a batch is what one worker takes.

        Raises:
            TaskArgumentsError: the arguments cannot be sent as JSON.
            DeliveryError: the client refused the record.
        """
        if self._publisher is None:
            envelope.encode()  # arguments that are not JSON fail before any connection
        publisher = self._start()
        if queue:
            publisher = self._queue_publisher()
        envelope.reply = self._reply_to
        value = envelope.encode()
        sent = now_ms()
        due = sent + int(delay * 1000) if delay > 0 else 0
        self._ensure(topic, partitions)
        destination, delivery = topic, Delivery(due=due)
        tier = tier_for(delay)
        if tier is not None:
            destination = delay_topic(self.app_id, tier)
            self._ensure(destination, DELAY_PARTITIONS)
            delivery = Delivery(due=due, target=topic)
        slot = _Slot()
        self._slots[envelope.id] = slot
        record_key = key if key is not None else envelope.id
        published = publisher.publish(
            destination,
            value,
            key=record_key.encode() if isinstance(record_key, str) else record_key,
            headers=list(delivery.headers()) or None,
            timestamp=sent,
        )
        return TaskHandle(envelope.id, envelope.task, slot, published)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what was sent (up to ``timeout``) and stop reading replies."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for publisher in (self._publisher, self._single):
            if publisher is None:
                continue
            try:
                publisher.flush(timeout)
            except DeliveryError as exc:
                log.error("tasks not delivered before exit: %s", exc)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # -- internals -----------------------------------------------------------------

    def _start(self) -> Publisher:
        with self._lock:
            if self._publisher is not None:
                return self._publisher
            self._ensure(reply_topic(self.app_id), REPLY_PARTITIONS, REPLY_RETENTION_MS)
            self._consumer, self._reply_to = self._listen()
            self._publisher = Publisher(
                settings=self.settings,
                key_serde="bytes",
                value_serde="bytes",
                linger_ms=1,
                client_id=f"{self.app_id}-tasks",
            )
            self._thread = threading.Thread(
                target=self._serve, name="millstream-task-replies", daemon=True
            )
            self._thread.start()
            atexit.register(self.close)
            return self._publisher

    def _queue_publisher(self) -> Publisher:
        with self._lock:
            if self._single is None:
                self._single = Publisher(
                    settings=self.settings,
                    key_serde="bytes",
                    value_serde="bytes",
                    linger_ms=1,
                    client_id=f"{self.app_id}-queue-tasks",
                    producer_config={"batch.num.messages": 1},
                )
            return self._single

    def _listen(self) -> tuple[Consumer, tuple[str, int]]:
        """A consumer of one partition of the reply topic, from its current end.

        Raises:
            KafkaError: the topic's partitions had no leader within the client timeout.
        """
        topic = reply_topic(self.app_id)
        overrides: dict[str, Any] = {"enable.auto.commit": False, "fetch.wait.max.ms": 10}
        consumer = make_consumer(self.settings, f"{self.app_id}-replies", **overrides)
        deadline = time.monotonic() + self.settings.client_timeout
        pause = 0.1
        while True:
            try:
                partition, end = self._reply_end(consumer, topic)
                consumer.assign([TopicPartition(topic, partition, end)])
                return consumer, (topic, partition)
            except Exception as exc:
                # A topic created a moment ago has no leaders yet.
                error = (
                    exc
                    if isinstance(exc, KafkaError)
                    else from_exception(exc, f"reading the end of {topic!r}")
                )
                again = error.retriable or error.code in _NOT_READY
                if not again or time.monotonic() + pause > deadline:
                    consumer.close()
                    raise error from exc
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _reply_end(self, consumer: Consumer, topic: str) -> tuple[int, int]:
        timeout = self.settings.client_timeout
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        if not partitions:
            raise KafkaError(f"topic {topic!r} has no partitions yet", retriable=True)
        partition = random.choice(list(partitions))
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        return partition, high

    def _serve(self) -> None:
        consumer, publisher = self._consumer, self._publisher
        assert consumer is not None and publisher is not None
        while not self._stop.is_set():
            publisher.poll(0)
            if self._single is not None:
                self._single.poll(0)
            # poll() returns with the first reply; consume() would wait for a full batch.
            first = consumer.poll(0.05)
            if first is None:
                continue
            for message in [first, *consumer.consume(500, 0)]:
                if message.error() is None:
                    self._deliver(message.value())

    def _deliver(self, value: bytes | None) -> None:
        try:
            reply = orjson.loads(value or b"")
            slot = self._slots.get(reply["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if slot is not None:
            slot.fill(reply)

    def _ensure(self, topic: str, partitions: int, retention_ms: int | None = None) -> None:
        """Create ``topic`` if it is missing (once per process and topic)."""
        if topic in self._ready:
            return
        admin = TopicAdmin(self.settings)
        if topic not in admin.partition_counts():
            if not self.settings.auto_create_topics:
                raise TopicNotFoundError(
                    f"topic {topic!r} does not exist and MILLSTREAM_AUTO_CREATE_TOPICS is off: "
                    "start a worker of the app first, or create it (millstream topics create)"
                )
            config = {"retention.ms": str(retention_ms)} if retention_ms else {}
            admin.create([TopicSpec(topic, partitions, None, config)])
        self._ready.add(topic)
