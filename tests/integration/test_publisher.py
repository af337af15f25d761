"""Publisher and AsyncPublisher against the real cluster: what is published is what arrives."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from support import consume_all, delete_topics, record_count

from millstream.config import Settings
from millstream.errors import ConfigurationError, DeliveryError, SerializationError
from millstream.kafka import TopicAdmin, TopicSpec
from millstream.producers import (
    AsyncPublisher,
    Delivery,
    ProducerRecord,
    Publisher,
    RecordMetadata,
)
from millstream.topics import declare_topic

pytestmark = pytest.mark.timeout(120)

UNREACHABLE = "127.0.0.1:1"
# Records for an unreachable broker fail fast instead of after the 5-minute default.
FAIL_FAST = {"message.timeout.ms": 1000}


@pytest.fixture
def topic_factory(
    unique_name: Callable[[str], str], settings: Settings, admin: TopicAdmin
) -> Iterator[Callable[[int], str]]:
    created: list[str] = []

    def make(partitions: int = 1) -> str:
        name = unique_name("topic")
        admin.create([TopicSpec(name, partitions)])
        created.append(name)
        return name

    yield make
    delete_topics(settings, created)


@pytest.fixture
def topic(topic_factory: Callable[[int], str]) -> str:
    return topic_factory(1)


def test_delivery_handles_resolve_with_offsets_in_order(settings: Settings, topic: str) -> None:
    with Publisher(settings=settings) as publisher:
        deliveries = [publisher.publish(topic, {"n": i}, key="k") for i in range(10)]
        results = [d.result(timeout=30) for d in deliveries]
    assert [r.offset for r in results] == list(range(10))
    assert {(r.topic, r.partition) for r in results} == {(topic, 0)}
    assert all(d.done() and d.exception() is None for d in deliveries)
    assert all(isinstance(r, RecordMetadata) and r.timestamp > 0 for r in results)


def test_keys_headers_and_timestamps_arrive(settings: Settings, topic: str) -> None:
    with Publisher(settings=settings) as publisher:
        first = publisher.publish(
            topic,
            {"amount": 12.5},
            key="card-1",
            headers={"trace": b"abc", "source": "test"},
            timestamp=1_700_000_000_123,
        )
        second = publisher.publish(
            topic,
            "plain",
            key=None,
            headers=[("h", b"1"), ("h", b"2")],
            timestamp=1_700_000_000_456,
        )
    assert first.result(0).timestamp == 1_700_000_000_123
    records = consume_all(settings, topic, count=2, timeout=30)
    assert [(r.key, r.value, r.timestamp, r.offset) for r in records] == [
        (b"card-1", b'{"amount":12.5}', 1_700_000_000_123, 0),
        (None, b'"plain"', 1_700_000_000_456, 1),
    ]
    assert records[0].headers == {"trace": b"abc", "source": b"test"}
    assert second.result(0).offset == 1


def test_a_declared_topic_brings_its_serdes(settings: Settings, topic: str) -> None:
    declared = declare_topic(topic, key_serde="int", value_serde="str")
    with Publisher(settings=settings) as publisher:
        publisher.publish(declared, "hello", key=7).result(timeout=30)
    [record] = consume_all(settings, topic, count=1, timeout=30)
    assert (record.key, record.value) == ((7).to_bytes(8, "big"), b"hello")


def test_done_callbacks_run_once_with_the_handle(settings: Settings, topic: str) -> None:
    seen: list[tuple[str, Delivery]] = []
    with Publisher(settings=settings) as publisher:
        delivery = publisher.publish(topic, 1, on_delivery=lambda d: seen.append(("on", d)))
        delivery.add_done_callback(lambda d: seen.append(("added", d)))
        publisher.flush(timeout=30)
        delivery.add_done_callback(lambda d: seen.append(("late", d)))
    assert seen == [("on", delivery), ("added", delivery), ("late", delivery)]


def test_publish_many_counts_and_keeps_order_per_key(
    settings: Settings, topic_factory: Callable[[int], str]
) -> None:
    topic = topic_factory(3)
    records = [
        ProducerRecord({"i": i}, key=f"card-{i % 7}", timestamp=1_700_000_000_000 + i)
        for i in range(5000)
    ]
    progress: list[int] = []
    with Publisher(settings=settings) as publisher:
        counts = publisher.publish_many(topic, records, on_progress=progress.append)
    assert (counts.delivered, counts.failed, counts.first_error) == (5000, 0, None)
    assert progress[-1] == 5000 and progress == sorted(progress)
    consumed = consume_all(settings, topic, count=5000, timeout=60)
    by_key: dict[bytes, list[int]] = {}
    for r in consumed:
        value = orjson.loads(r.value or b"")
        assert r.timestamp == 1_700_000_000_000 + value["i"]
        by_key.setdefault(r.key or b"", []).append(value["i"])
    assert sorted(i for values in by_key.values() for i in values) == list(range(5000))
    assert all(values == sorted(values) for values in by_key.values())


def test_a_full_queue_is_waited_out_not_raised(settings: Settings, topic: str) -> None:
    tiny = {"queue.buffering.max.messages": 10}
    with Publisher(settings=settings, producer_config=tiny, linger_ms=1) as publisher:
        deliveries = [publisher.publish(topic, {"i": i}) for i in range(1000)]
        counts = publisher.publish_many(topic, (ProducerRecord({"i": i}) for i in range(2000)))
    assert all(d.done() for d in deliveries)
    assert counts.delivered == 2000
    assert record_count(settings, topic) == 3000


def test_a_queue_that_stays_full_raises_delivery_error(settings: Settings) -> None:
    config = {"queue.buffering.max.messages": 5, **FAIL_FAST}
    publisher = Publisher(
        bootstrap_servers=UNREACHABLE,
        settings=settings,
        producer_config=config,
        queue_full_timeout=0.3,
    )
    with pytest.raises(DeliveryError, match="queue stayed full") as info:
        for i in range(10):
            publisher.publish("anywhere", i)
    assert info.value.code == "_QUEUE_FULL"
    publisher.flush(timeout=30)


def test_failed_records_fail_their_handles_and_the_context_manager(settings: Settings) -> None:
    publisher = Publisher(bootstrap_servers=UNREACHABLE, producer_config=FAIL_FAST)
    with pytest.raises(DeliveryError, match="3 record"), publisher:
        deliveries = [publisher.publish("anywhere", i) for i in range(3)]
        with pytest.raises(DeliveryError) as info:
            deliveries[0].result(timeout=30)
        assert "anywhere" in str(info.value)
    assert publisher.failed == 3


def test_publish_many_reports_failures_as_counts(settings: Settings) -> None:
    publisher = Publisher(bootstrap_servers=UNREACHABLE, producer_config=FAIL_FAST)
    counts = publisher.publish_many("anywhere", [ProducerRecord(i) for i in range(4)])
    assert (counts.delivered, counts.failed) == (0, 4)
    assert isinstance(counts.first_error, DeliveryError)


def test_bad_values_raise_before_anything_is_sent(settings: Settings, topic: str) -> None:
    with Publisher(settings=settings) as publisher:
        with pytest.raises(SerializationError):
            publisher.publish(topic, {"not json": object()})
        records = [ProducerRecord({"i": 1}), ProducerRecord({"i": 2}), ProducerRecord(object())]
        with pytest.raises(SerializationError) as info:
            publisher.publish_many(topic, records)
    assert any("2 record(s) were delivered" in note for note in info.value.__notes__)
    assert record_count(settings, topic) == 2


def test_invalid_options_are_configuration_errors(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="compression"):
        Publisher(settings=settings, compression="brotli")
    with pytest.raises(ConfigurationError, match="producer_config"):
        Publisher(settings=settings, producer_config={"no.such.property": 1})


def test_publishing_from_several_threads(settings: Settings, topic: str) -> None:
    with Publisher(settings=settings) as publisher:

        def publish_some(worker: int) -> None:
            for i in range(500):
                publisher.publish(topic, {"w": worker, "i": i})

        threads = [threading.Thread(target=publish_some, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert record_count(settings, topic) == 2000


def test_async_publisher_resolves_metadata(settings: Settings, topic: str) -> None:
    async def main() -> list[RecordMetadata]:
        async with AsyncPublisher(settings=settings) as publisher:
            return await asyncio.gather(
                *(
                    publisher.publish(topic, {"i": i}, key="k", timestamp=1000 + i)
                    for i in range(200)
                )
            )

    results = asyncio.run(asyncio.wait_for(main(), 60))
    assert sorted(r.offset for r in results) == list(range(200))
    consumed = consume_all(settings, topic, count=200, timeout=30)
    assert {(r.key, r.timestamp) for r in consumed} == {(b"k", 1000 + i) for i in range(200)}


def test_async_publisher_waits_out_a_full_queue(settings: Settings, topic: str) -> None:
    async def main() -> int:
        publisher = AsyncPublisher(
            settings=settings, producer_config={"queue.buffering.max.messages": 5}
        )
        await publisher.start()
        try:
            results = await asyncio.gather(*(publisher.publish(topic, i) for i in range(300)))
            await publisher.flush(timeout=30)
        finally:
            await publisher.close()
        return len(results)

    assert asyncio.run(asyncio.wait_for(main(), 60)) == 300
    assert record_count(settings, topic) == 300


def test_async_publisher_raises_delivery_errors(settings: Settings) -> None:
    async def main() -> Any:
        async with AsyncPublisher(
            bootstrap_servers=UNREACHABLE, producer_config=FAIL_FAST
        ) as publisher:
            return await publisher.publish("anywhere", {"a": 1})

    with pytest.raises(DeliveryError):
        asyncio.run(asyncio.wait_for(main(), 60))
