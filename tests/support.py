"""Helpers shared by the integration tests: produce, consume back, wait on conditions."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import KafkaException

from millstream.config import Settings
from millstream.kafka import TopicPartition, make_admin, make_consumer, make_producer


@dataclass(frozen=True)
class Consumed:
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int
    timestamp: int
    headers: dict[str, bytes]

    def json(self) -> Any:
        return orjson.loads(self.value) if self.value is not None else None

    @classmethod
    def of(cls, m: Any) -> Consumed:
        """The fields of a consumed confluent-kafka message."""
        headers = {k: v for k, v in (m.headers() or [])}
        return cls(m.key(), m.value(), m.partition(), m.offset(), m.timestamp()[1], headers)


def produce(
    settings: Settings,
    topic: str,
    records: Iterable[tuple[str | bytes | None, bytes | None]],
    *,
    timestamps: Iterable[int] | None = None,
) -> int:
    """Produce (key, value) pairs and flush; returns the count. Fails on delivery errors."""
    errors: list[str] = []
    producer = make_producer(
        settings, on_delivery=lambda err, _msg: err and errors.append(str(err))
    )
    stamps = iter(timestamps) if timestamps is not None else None
    count = 0
    for key, value in records:
        kwargs: dict[str, Any] = {}
        if stamps is not None:
            kwargs["timestamp"] = next(stamps)
        while True:
            try:
                producer.produce(topic, value, key, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    assert producer.flush(60) == 0, "records still queued after 60 s"
    assert not errors, f"delivery failed: {errors[:3]}"
    return count


def produce_json(settings: Settings, topic: str, records: Iterable[tuple[str, Any]]) -> int:
    return produce(settings, topic, ((k, orjson.dumps(v)) for k, v in records))


def end_offsets(settings: Settings, topic: str, timeout: float = 30.0) -> dict[int, int]:
    """High watermark of every partition of ``topic`` ({} while the topic does not exist).

    Retries while a new topic's partition leaders are still being elected.
    """
    consumer = make_consumer(settings, f"probe-{uuid.uuid4().hex}")
    deadline = time.monotonic() + timeout
    try:
        while True:
            metadata = consumer.list_topics(topic, timeout=10)
            if topic not in metadata.topics or metadata.topics[topic].error is not None:
                return {}
            try:
                return {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in metadata.topics[topic].partitions
                }
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        consumer.close()


def consume_all(
    settings: Settings, topic: str, *, count: int | None = None, timeout: float = 60.0
) -> list[Consumed]:
    """Read ``topic`` from the beginning up to its current end (or until ``count`` records).

    Fails with a clear message when the records do not arrive within ``timeout``.
    """
    ends = end_offsets(settings, topic)
    consumer = make_consumer(
        settings, f"reader-{uuid.uuid4().hex}", **{"group.protocol": "classic"}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    out: list[Consumed] = []
    positions = dict.fromkeys(ends, 0)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if count is not None and len(out) >= count:
                break
            if count is None and all(positions[p] >= ends[p] for p in ends):
                break
            if time.monotonic() > deadline:
                want = count if count is not None else sum(ends.values())
                raise AssertionError(f"read {len(out)} of {want} records of {topic} in {timeout}s")
            batch = consumer.consume(5000, 0.5)
            # Positions, not record offsets: transaction markers take offsets too.
            for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                positions[tp.partition] = max(positions[tp.partition], tp.offset)
            for m in batch:
                if m.error():
                    continue
                out.append(Consumed.of(m))
    finally:
        consumer.close()
    return out


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def record_count(settings: Settings, topic: str) -> int:
    """Offsets used in ``topic``: the number of records for a non-transactional,
    uncompacted topic; transactional topics also spend offsets on commit markers."""
    return sum(end_offsets(settings, topic).values())


def delete_topics(settings: Settings, names: Iterable[str]) -> None:
    admin = make_admin(settings)
    futures = admin.delete_topics(list(names), operation_timeout=10)
    for future in futures.values():
        with contextlib.suppress(Exception):
            future.result(10)


class TopicReader:
    """Reads a topic from the beginning, incrementally, as a read_committed consumer.

    ``poll()`` takes what arrived since the last call; ``records`` holds everything read.
    """

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.records: list[Consumed] = []
        self._consumer = make_consumer(settings, f"reader-{uuid.uuid4().hex}")
        partitions: dict[int, int] = {}
        wait_for(
            lambda: bool(partitions.update(end_offsets(settings, topic)) or partitions),
            60,
            f"topic {topic} to exist",
        )
        self._consumer.assign([TopicPartition(topic, p, 0) for p in partitions])

    def poll(self, seconds: float = 0.5) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = self._consumer.consume(10000, 0.2)
            for m in batch:
                if m.error():
                    continue
                self.records.append(Consumed.of(m))
            if not batch:
                break
        return len(self.records)

    def close(self) -> None:
        self._consumer.close()


class ThreadedWorker:
    """A worker of ``app`` running in a thread of the test process; ``stop()`` returns
    its counters and re-raises whatever ended it."""

    def __init__(self, app: Any) -> None:
        self.worker = app.worker()
        self.stats: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.stats = self.worker.run(install_signal_handlers=False)
        except BaseException as exc:
            self.error = exc

    def stop(self) -> Any:
        self.worker.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "worker did not stop within 60 s"
        if self.error:
            raise self.error
        assert self.stats is not None
        return self.stats
