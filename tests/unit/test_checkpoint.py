"""At-least-once checkpoints keep offsets the group coordinator could not take.

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


class Flushed:
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


def checkpoint_of(consumer: Committing) -> Checkpoint:
    checkpoint = Checkpoint(interval=1.0)
    checkpoint.pending[("in", 0)] = 10
    checkpoint.commit(consumer, Flushed(), [], None, print)  # type: ignore[arg-type]
    return checkpoint


def test_offsets_the_coordinator_could_not_take_go_with_the_next_checkpoint() -> None:
    consumer = Committing(KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
    checkpoint = checkpoint_of(consumer)
    assert consumer.committed == []
    assert checkpoint.pending == {("in", 0): 10}

    checkpoint.pending[("in", 0)] = 25
    checkpoint.commit(consumer, Flushed(), [], None, print)  # type: ignore[arg-type]
    assert consumer.committed == [[("in", 0, 25)]]
    assert checkpoint.pending == {}
    assert checkpoint.committed == {("in", 0): 25}


def test_a_commit_refused_for_good_is_raised() -> None:
    with pytest.raises(MillstreamKafkaError, match="committing offsets"):
        checkpoint_of(Committing(KafkaError.GROUP_AUTHORIZATION_FAILED))
