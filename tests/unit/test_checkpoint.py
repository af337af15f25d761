"""Checkpoints commit what the owned partitions offer, in two phases.

A broker's death moves the group's coordinator; a commit meanwhile fails with a
retriable error (COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR). The worker must
go on and commit those offsets with the next checkpoint, not exit. Stand-in
clients fail the way confluent-kafka does.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from millstream.errors import KafkaError as MillstreamKafkaError
from millstream.processors.checkpoint import Checkpoint
from millstream.processors.collector import RecordCollector
from millstream.processors.partitions import OwnedPartitions
from millstream.processors.topology import Topology
from millstream.processors.worker_config import WorkerStats


class Flushed:
    """A producer whose every record is delivered."""

    def flush(self, timeout: float) -> int:
        return 0


class Committing:
    """Fails its first commits with the given librdkafka error codes, then takes them."""

    def __init__(self, *failures: int) -> None:
        self.failures = list(failures)
        self.committed: list[list[tuple[str, int, int]]] = []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        if self.failures:
            raise KafkaException(KafkaError(self.failures.pop(0)))
        self.committed.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])


def owned_and_collector() -> tuple[OwnedPartitions, RecordCollector]:
    collector = RecordCollector(WorkerStats(), "app-dlq", "app-late")
    collector.attach(Flushed())  # type: ignore[arg-type]
    return OwnedPartitions(Topology("app"), None), collector


def test_offsets_the_coordinator_could_not_take_go_with_the_next_checkpoint() -> None:
    consumer = Committing(KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
    owned, collector = owned_and_collector()
    checkpoint = Checkpoint(interval=1.0)
    part = owned.get("in", 0)
    part.processed(10)
    checkpoint.commit(consumer, collector, owned, [])  # type: ignore[arg-type]
    assert consumer.committed == []
    assert owned.committable_offsets() == [("in", 0, 10)]

    part.processed(25)
    checkpoint.commit(consumer, collector, owned, [])  # type: ignore[arg-type]
    assert consumer.committed == [[("in", 0, 25)]]
    assert owned.committable_offsets() == []
    assert checkpoint.commits == 1


def test_nothing_new_commits_nothing() -> None:
    consumer = Committing()
    owned, collector = owned_and_collector()
    checkpoint = Checkpoint(interval=1.0)
    owned.get("in", 0).processed(7)
    checkpoint.commit(consumer, collector, owned, [])  # type: ignore[arg-type]
    checkpoint.commit(consumer, collector, owned, [])  # type: ignore[arg-type]
    assert consumer.committed == [[("in", 0, 7)]]


def test_a_commit_refused_for_good_is_raised() -> None:
    owned, collector = owned_and_collector()
    owned.get("in", 0).processed(10)
    with pytest.raises(MillstreamKafkaError, match="committing offsets"):
        Checkpoint(interval=1.0).commit(
            Committing(KafkaError.GROUP_AUTHORIZATION_FAILED),  # type: ignore[arg-type]
            collector,
            owned,
            [],
        )
