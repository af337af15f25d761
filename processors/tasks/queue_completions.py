"""The completion records of queue-mode tasks, which every queue worker reads.

In queue mode no worker owns a partition, so the completion store of ordered mode
(a RocksDB store per owned partition) has no owner. Instead each queue task topic
``T`` has a compacted topic ``T-done`` (deleted after 24 hours as well), keyed by
task id, with the same entries ordered mode keeps: ``{"g": replay generation, "a":
attempts, "t": epoch ms, "r": the reply or null}``. Every queue worker reads all of
it into memory at start and follows it while it runs; a worker writes its own
entries into its copy as it produces them.

A record delivered again (its worker died, or its lock ran out) is checked only
after this copy has caught up with the topic's end, so a task its dead worker
finished is not run again. Two records with the same task id delivered to two
workers at the same moment can both run: the check is as good as what has been
written when it is made (docs/tasks.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from millstream.config import Settings
from millstream.kafka import (
    OFFSET_BEGINNING,
    Consumer,
    TopicPartition,
    from_exception,
    make_consumer,
)

log = logging.getLogger("millstream.tasks")

#: Answers of a partition whose leader is not known yet: asked again.
_NOT_READY = frozenset(
    {
        "NOT_LEADER_FOR_PARTITION",
        "LEADER_NOT_AVAILABLE",
        "UNKNOWN_TOPIC_OR_PART",
        "_UNKNOWN_PARTITION",
        "_TIMED_OUT",
    }
)
#: Entries older than this are ignored (the topic deletes them too).
TTL_MS = 24 * 3600 * 1000


def done_topic(task_topic: str) -> str:
    """The completion topic of a queue task topic."""
    return f"{task_topic}-done"


class QueueCompletions:
    """An in-memory copy of the completion topics of queue tasks. One thread only."""

    def __init__(self, settings: Settings, topics: list[str], client_id: str) -> None:
        self.settings = settings
        self.topics = topics
        self._client_id = client_id
        self._entries: dict[tuple[str, str], dict[str, Any]] = {}
        self._consumer: Consumer | None = None
        self._partitions: list[TopicPartition] = []

    def start(self) -> None:
        """Assign every partition from the beginning and read up to the current end."""
        consumer = make_consumer(
            self.settings,
            f"{self._client_id}-completions",
            client_id=f"{self._client_id}-completions",
            **{"fetch.wait.max.ms": 10},
        )
        timeout = self.settings.client_timeout
        for topic in self.topics:
            metadata = consumer.list_topics(topic, timeout=timeout)
            self._partitions += [
                TopicPartition(topic, p) for p in metadata.topics[topic].partitions
            ]
        consumer.assign(
            [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in self._partitions]
        )
        self._consumer = consumer
        began = time.monotonic()
        self.catch_up(max(timeout, 60.0))
        log.info(
            "queue task completions: %d loaded in %.2fs",
            len(self._entries),
            time.monotonic() - began,
        )

    def poll(self) -> None:
        """Apply what arrived since the last call, without waiting."""
        if self._consumer is not None:
            self._apply(self._consumer.consume(5000, 0))

    def catch_up(self, timeout: float) -> bool:
        """Read until every partition is at the end it has now; False when ``timeout``
        passed first."""
        consumer = self._consumer
        if consumer is None:
            return False
        deadline = time.monotonic() + timeout
        ends: dict[tuple[str, int], int] = {}
        for tp in self._partitions:
            low, high = self._watermarks(consumer, tp, deadline)
            if high > low:
                ends[(tp.topic, tp.partition)] = high
        while time.monotonic() < deadline:
            positions = consumer.position(list(self._partitions))
            if all(
                tp.offset >= ends[(tp.topic, tp.partition)]
                for tp in positions
                if (tp.topic, tp.partition) in ends
            ):
                return True
            self._apply(consumer.consume(5000, 0.05))
        return False

    def _watermarks(
        self, consumer: Consumer, tp: TopicPartition, deadline: float
    ) -> tuple[int, int]:
        """The partition's low and high watermarks, asked again while its leader is not
        known yet (a topic created a moment ago)."""
        while True:
            remaining = max(deadline - time.monotonic(), 0.5)
            try:
                low, high = consumer.get_watermark_offsets(tp, timeout=remaining)
                return int(low), int(high)
            except Exception as exc:
                error = from_exception(exc, f"reading the end of {tp.topic}[{tp.partition}]")
                if time.monotonic() >= deadline or error.code not in _NOT_READY:
                    raise error from exc
            time.sleep(0.1)

    def get(self, topic: str, task_id: str) -> dict[str, Any] | None:
        """The entry of ``task_id`` in the completions of ``topic``, if there is a live one."""
        entry = self._entries.get((topic, task_id))
        if entry is None or entry.get("t", 0) < time.time() * 1000 - TTL_MS:
            return None
        return entry

    def put(self, topic: str, task_id: str, entry: dict[str, Any]) -> None:
        """Keep an entry this worker is writing to the topic."""
        self._entries[(topic, task_id)] = entry

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _apply(self, messages: list[Any]) -> None:
        for message in messages:
            if message.error() is not None:
                continue
            topic, key, value = message.topic() or "", message.key(), message.value()
            if key is None:
                continue
            task_id = key.decode(errors="replace")
            if value is None:
                self._entries.pop((topic, task_id), None)
                continue
            try:
                entry = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                self._entries[(topic, task_id)] = entry
