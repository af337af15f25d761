"""A group consumer looks the committed offsets of newly assigned partitions up itself.

librdkafka's own lookup is never asked again once it failed with a request-level
NOT_COORDINATOR (the group's coordinator had just moved), and the partition then
stays unfetched for good. The lookup here asks again until the coordinator answers.
Stand-in lookups fail the way ``Consumer.committed`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    OFFSET_STORED,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from millstream.errors import KafkaError as MillstreamKafkaError
from millstream.kafka.group import GroupConsumer, reset_offset, resolve_offsets


@dataclass
class Answer:
    """One partition of a ``committed()`` answer."""

    topic: str
    partition: int
    offset: int = OFFSET_INVALID
    error: KafkaError | None = None


class Recording(GroupConsumer):
    """A group consumer whose ``committed()`` is played back by ``lookups``."""

    def __init__(self, config: dict[str, Any], lookups: Lookups) -> None:
        super().__init__(config)
        self.lookups = lookups

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[Any]:  # type: ignore[override]
        return self.lookups(partitions, timeout)


class Lookups:
    """Plays back one step per call: an error code raises for the whole request, a dict
    answers per partition ((topic, partition) -> offset or error code)."""

    def __init__(self, *steps: int | dict[tuple[str, int], int | KafkaError]) -> None:
        self.steps = list(steps)
        self.asked: list[list[tuple[str, int]]] = []

    def __call__(self, partitions: list[TopicPartition], timeout: float) -> list[Any]:
        self.asked.append([(tp.topic, tp.partition) for tp in partitions])
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, int):
            raise KafkaException(KafkaError(step))
        answers = []
        for tp in partitions:
            value = step.get((tp.topic, tp.partition), OFFSET_INVALID)
            if isinstance(value, KafkaError):
                answers.append(Answer(tp.topic, tp.partition, error=value))
            else:
                answers.append(Answer(tp.topic, tp.partition, value))
        return answers


def test_a_lookup_the_moving_coordinator_refused_is_asked_again() -> None:
    partitions = [TopicPartition("in", 0), TopicPartition("in", 1, OFFSET_STORED)]
    lookups = Lookups(
        KafkaError.NOT_COORDINATOR,
        KafkaError._WAIT_COORD,  # noqa: SLF001 - librdkafka's name for "no coordinator yet"
        {("in", 0): 42, ("in", 1): OFFSET_INVALID},
    )

    resolve_offsets(lookups, partitions, OFFSET_BEGINNING)

    assert [tp.offset for tp in partitions] == [42, OFFSET_BEGINNING]
    assert lookups.asked == [[("in", 0), ("in", 1)]] * 3


def test_only_partitions_without_an_offset_are_looked_up() -> None:
    partitions = [TopicPartition("in", 0, 17), TopicPartition("in", 1)]
    lookups = Lookups({("in", 1): 5})

    resolve_offsets(lookups, partitions, OFFSET_END)

    assert [tp.offset for tp in partitions] == [17, 5]
    assert lookups.asked == [[("in", 1)]]


def test_nothing_is_asked_when_every_offset_is_known() -> None:
    lookups = Lookups({})
    resolve_offsets(lookups, [TopicPartition("in", 0, 3)], OFFSET_END)
    assert lookups.asked == []


def test_a_partition_whose_offset_is_not_stable_yet_is_asked_again_alone() -> None:
    partitions = [TopicPartition("in", 0), TopicPartition("in", 1)]
    lookups = Lookups(
        {("in", 0): 8, ("in", 1): KafkaError(KafkaError.UNSTABLE_OFFSET_COMMIT)},
        {("in", 1): 9},
    )

    resolve_offsets(lookups, partitions, OFFSET_END)

    assert [tp.offset for tp in partitions] == [8, 9]
    assert lookups.asked == [[("in", 0), ("in", 1)], [("in", 1)]]


def test_an_error_that_waiting_cannot_mend_is_raised_at_once() -> None:
    lookups = Lookups(KafkaError.GROUP_AUTHORIZATION_FAILED, {("in", 0): 1})

    with pytest.raises(MillstreamKafkaError) as raised:
        resolve_offsets(lookups, [TopicPartition("in", 0)], OFFSET_END)

    assert raised.value.code == "GROUP_AUTHORIZATION_FAILED"
    assert len(lookups.asked) == 1


def test_a_coordinator_that_never_answers_fails_the_assignment_in_bounded_time() -> None:
    lookups = Lookups(KafkaError.NOT_COORDINATOR)

    with pytest.raises(MillstreamKafkaError) as raised:
        resolve_offsets(lookups, [TopicPartition("in", 0)], OFFSET_END, timeout=0.5)

    assert raised.value.code == "NOT_COORDINATOR"
    assert raised.value.retriable
    assert 2 <= len(lookups.asked) <= 4


@pytest.mark.parametrize(
    ("policy", "offset"),
    [
        ("earliest", OFFSET_BEGINNING),
        ("smallest", OFFSET_BEGINNING),
        ("latest", OFFSET_END),
        ("largest", OFFSET_END),
        (None, OFFSET_END),
        ("error", OFFSET_INVALID),
    ],
)
def test_partitions_without_a_commit_start_where_auto_offset_reset_says(
    policy: str | None, offset: int
) -> None:
    assert reset_offset(policy) == offset


def test_the_group_consumer_assigns_the_offsets_it_looked_up() -> None:
    lookups = Lookups({("in", 0): 11, ("in", 1): OFFSET_INVALID})
    config = {"bootstrap.servers": "127.0.0.1:9", "group.id": "g", "auto.offset.reset": "earliest"}
    consumer = Recording(config, lookups)
    try:
        partitions = [TopicPartition("in", 0), TopicPartition("in", 1)]

        consumer.incremental_assign(partitions)

        assert [tp.offset for tp in partitions] == [11, OFFSET_BEGINNING]
        assert sorted((tp.topic, tp.partition) for tp in consumer.assignment()) == [
            ("in", 0),
            ("in", 1),
        ]
    finally:
        consumer.close()


def test_a_closing_group_consumer_assigns_without_looking_offsets_up() -> None:
    lookups = Lookups(KafkaError.NOT_COORDINATOR)
    consumer = Recording({"bootstrap.servers": "127.0.0.1:9", "group.id": "g"}, lookups)
    consumer._closing = True  # noqa: SLF001 - what close() sets while its callbacks run
    try:
        consumer.incremental_assign([TopicPartition("in", 0)])
        assert lookups.asked == []
    finally:
        consumer.close()
