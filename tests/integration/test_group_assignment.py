"""A group consumer starts newly assigned partitions at offsets it looked up itself.

librdkafka's own lookup of a partition's committed offset is never asked again once
it failed as a whole with NOT_COORDINATOR (the coordinator had just moved), and the
partition then stays unfetched for good (see millstream/kafka/group.py). Here the real
broker checks the replacement: the assignment handed to librdkafka carries explicit
offsets (the group's commit, or ``auto.offset.reset`` where there is none), under both
group protocols, and consumption starts there.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END
from support import delete_topics

from millstream.config import Settings
from millstream.kafka import (
    Consumer,
    TopicAdmin,
    TopicPartition,
    TopicSpec,
    make_consumer,
    make_producer,
)

pytestmark = pytest.mark.timeout(120)

PROTOCOLS = {
    "consumer": {"group.protocol": "consumer"},
    "classic": {
        "group.protocol": "classic",
        "partition.assignment.strategy": "cooperative-sticky",
    },
}


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_assigned_partitions_start_at_the_offsets_the_consumer_looked_up(
    protocol: str,
    reset: str,
    settings: Settings,
    admin: TopicAdmin,
    unique_name: Callable[[str], str],
) -> None:
    topic, group = unique_name("topic"), unique_name("group")
    admin.create([TopicSpec(topic, 2, 1)])
    try:
        producer = make_producer(settings)
        for partition in (0, 1):
            for i in range(10):
                producer.produce(topic, b"v", f"k{i}", partition)
        assert producer.flush(30) == 0
        committer = make_consumer(settings, group)
        committer.commit(offsets=[TopicPartition(topic, 0, 7)], asynchronous=False)
        committer.close()

        handed: dict[int, int] = {}

        def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            consumer.incremental_assign(partitions)
            handed.update({tp.partition: tp.offset for tp in partitions})

        consumer = make_consumer(
            settings, group, **{**PROTOCOLS[protocol], "auto.offset.reset": reset}
        )
        consumer.subscribe([topic], on_assign=on_assign)
        try:
            first: dict[int, int] = {}
            last: dict[int, int] = {}
            for _ in range(60):
                for message in consumer.consume(100, 0.5):
                    if message.error() is None:
                        first.setdefault(message.partition(), message.offset())
                        last[message.partition()] = message.offset()
                # Partition 0 read to its end (and partition 1 too, where it starts at 0).
                if last.get(0) == 9 and (reset == "latest" or last.get(1) == 9):
                    break
            logical = OFFSET_BEGINNING if reset == "earliest" else OFFSET_END
            assert handed == {0: 7, 1: logical}
            assert first.get(0) == 7
            # "latest": nothing of what partition 1 held before the assignment is read.
            assert first.get(1) == (0 if reset == "earliest" else None)
        finally:
            consumer.close()
    finally:
        delete_topics(settings, [topic])
