"""The harness's own Kafka traffic: topics, offsets, the input records, paced load, latency.

Runs in millstream's virtualenv and talks to confluent-kafka directly: it measures the
contenders from the outside and must not depend on any of them.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import (
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # type: ignore[attr-defined]

from bench.contenders.common import MIN_AMOUNT

#: Input records are ~150-byte JSON objects; this many distinct merchants cycle through them.
_MERCHANTS = 500
_LOAD_PRODUCER: dict[str, Any] = {
    "linger.ms": 1,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 1000000,
}
_BULK_PRODUCER: dict[str, Any] = {
    "linger.ms": 20,
    "batch.num.messages": 10000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 1000000,
}


def record(i: int, keys: int, ts_ms: int) -> tuple[bytes, bytes]:
    """Input record ``i``: key ``k<i mod keys>``, a ~150-byte JSON value carrying ``ts``.

    ``amount`` cycles through 0.00 ... 99.99, so exactly 75% pass the stateless filter
    in every block of 10,000 records.
    """
    key = f"k{i % keys:05d}"
    amount = (i * 7919 % 10000) / 100
    value = {
        "id": i,
        "key": key,
        "ts": ts_ms,
        "amount": amount,
        "currency": "EUR",
        "merchant": f"merchant-{i % _MERCHANTS:05d}",
        "country": "DE",
        "channel": "web",
        "status": "approved",
    }
    return key.encode(), orjson.dumps(value)


def passes_filter(i: int) -> bool:
    """Whether record ``i`` passes the stateless filter (mirrors ``record``)."""
    return (i * 7919 % 10000) / 100 >= MIN_AMOUNT


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Cluster:
    """Admin operations on the benchmark's broker: topics, end offsets, committed offsets."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def create_topic(
        self, name: str, partitions: int, config: dict[str, str] | None = None
    ) -> None:
        futures = self.admin.create_topics(
            [NewTopic(name, partitions, 1, config=config or {})], operation_timeout=30
        )
        futures[name].result(30)
        deadline = time.monotonic() + 30
        while len(self.end_offsets(name)) < partitions:
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {name} has no leaders after 30 s")
            time.sleep(0.1)

    def topics(self) -> list[str]:
        return list(self.admin.list_topics(timeout=10).topics)

    def delete_topics(self, names: list[str]) -> None:
        if not names:
            return
        for future in self.admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(KafkaException):
                future.result(30)

    def partitions(self, topic: str) -> list[int]:
        metadata = self.admin.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        return sorted(metadata.partitions)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """High watermark per partition ({} while the topic or its leaders do not exist)."""
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        request = {TopicPartition(topic, p): latest for p in self.partitions(topic)}
        if not request:
            return {}
        try:
            futures = self.admin.list_offsets(request, request_timeout=10)
            return {tp.partition: f.result().offset for tp, f in futures.items()}
        except KafkaException:
            return {}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The offsets ``group`` committed for ``topic`` (missing partitions: none yet)."""
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic, p) for p in self.partitions(topic)]
        )
        try:
            result = self.admin.list_consumer_group_offsets([request])[group].result(10)
        except KafkaException:
            return {}
        return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}


@dataclass(frozen=True)
class Prefill:
    """What was written to an input topic."""

    records: int
    passing_filter: int
    seconds: float


def prefill(bootstrap: str, topic: str, records: int, keys: int, *, spread_ms: int) -> Prefill:
    """Produce ``records`` input records; Kafka timestamps (event time) run evenly over the
    ``spread_ms`` milliseconds that end now, so windows close as stream time advances."""
    producer = Producer({"bootstrap.servers": bootstrap, **_BULK_PRODUCER})
    began = time.monotonic()
    start = now_ms() - spread_ms
    passing = 0
    for i in range(records):
        key, value = record(i, keys, now_ms())
        passing += passes_filter(i)
        _produce(producer, topic, key, value, timestamp=start + i * spread_ms // records)
    if producer.flush(120) != 0:
        raise RuntimeError(f"prefill of {topic}: records still queued after 120 s")
    return Prefill(records, passing, time.monotonic() - began)


def prefill_distinct(bootstrap: str, topic: str, keys: int) -> None:
    """One small record for each of ``keys`` distinct keys: a table with ``keys`` entries."""
    producer = Producer({"bootstrap.servers": bootstrap, **_BULK_PRODUCER})
    for i in range(keys):
        _produce(producer, topic, f"key-{i:08d}".encode(), b'{"amount": %d}' % i)
    if producer.flush(120) != 0:
        raise RuntimeError(f"prefill of {topic}: records still queued after 120 s")


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, **kwargs: Any) -> None:
    while True:
        try:
            producer.produce(topic, value, key, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)


class PacedLoad:
    """Produces input records at a fixed rate; each value's ``ts`` is its produce time."""

    def __init__(self, bootstrap: str, topic: str, keys: int) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap, **_LOAD_PRODUCER})
        self._topic = topic
        self._keys = keys
        self.sent = 0
        self.passing = 0

    def send(self, count: int) -> None:
        """``count`` records now (the warm-up), flushed."""
        for _ in range(count):
            self._one()
        self._producer.flush(30)

    def run(self, rate: int, seconds: float, tick: float = 0.005) -> None:
        """``rate`` records/s for ``seconds``, in bursts every ``tick`` seconds, flushed."""
        began = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - began) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                self._one()
                sent += 1
            self._producer.poll(0)
            time.sleep(max(0.0, began + (sent + tick * rate) / rate - time.monotonic()))
        self._producer.flush(30)

    def _one(self) -> None:
        i = self.sent
        self.sent += 1
        self.passing += passes_filter(i)
        key, value = record(i, self._keys, now_ms())
        _produce(self._producer, self._topic, key, value)


def latencies_ms(bootstrap: str, topic: str, since_ms: int, timeout: float = 60.0) -> list[int]:
    """Output append time minus input produce time (``ts``) of the output records of
    ``topic`` whose input was produced at or after ``since_ms``; the topic must use
    LogAppendTime."""
    return [
        appended - ts for appended, ts in _output_times(bootstrap, topic, timeout) if ts >= since_ms
    ]


def _output_times(bootstrap: str, topic: str, timeout: float) -> Iterator[tuple[int, int]]:
    cluster = Cluster(bootstrap)
    ends = cluster.end_offsets(topic)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    remaining = sum(ends.values())
    deadline = time.monotonic() + timeout
    try:
        while remaining > 0 and time.monotonic() < deadline:
            for m in consumer.consume(10000, 0.5):
                value = m.value()
                if m.error() or value is None:
                    continue
                remaining -= 1
                kind, appended = m.timestamp()
                if kind != TIMESTAMP_LOG_APPEND_TIME:
                    raise RuntimeError(f"{topic} must use message.timestamp.type=LogAppendTime")
                yield appended, orjson.loads(value)["ts"]
    finally:
        consumer.close()
