"""Completions ride in the commit's metadata on a real broker, within its limit."""

from __future__ import annotations

import pytest
from support import Names

from millstream.config import Settings
from millstream.errors import KafkaError
from millstream.kafka import TopicPartition, from_exception, make_consumer
from millstream.processors.completions import Completions


def commit_and_read(settings: Settings, names: Names, metadata: str) -> TopicPartition:
    consumer = make_consumer(settings, names.app)
    try:
        tp = TopicPartition(names.source, 0, 7, metadata=metadata)
        consumer.commit(offsets=[tp], asynchronous=False)
        [committed] = consumer.committed([TopicPartition(names.source, 0)], timeout=10)
        return committed  # type: ignore[no-any-return]
    finally:
        consumer.close()


def test_completions_come_back_from_a_commit(settings: Settings, names: Names) -> None:
    completions = Completions(7)
    for offset in (8, 9, 12, 40, 41):
        completions.done(offset)
    committed = commit_and_read(settings, names, completions.metadata())
    assert committed.offset == 7
    restored = Completions.from_commit(committed.offset, committed.metadata)
    assert [o for o in range(7, 50) if restored.is_done(o)] == [8, 9, 12, 40, 41]


def test_metadata_at_the_limit_is_taken_and_past_kafkas_is_refused(
    settings: Settings, names: Names
) -> None:
    completions = Completions(7)
    offset = 8
    while not completions.full:
        offset += 2
        completions.done(offset)
    committed = commit_and_read(settings, names, completions.metadata())
    assert committed.metadata == completions.metadata()
    with pytest.raises(Exception) as refused:
        commit_and_read(settings, names, "x" * 5000)
    error = from_exception(refused.value, "committing")
    assert isinstance(error, KafkaError)
    assert error.code == "OFFSET_METADATA_TOO_LARGE", error
