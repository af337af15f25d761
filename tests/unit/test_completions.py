"""Out-of-order completions: the committable offset, the commit metadata, back-pressure."""

from __future__ import annotations

import random

import pytest

from millstream.errors import SerializationError
from millstream.processors.completions import METADATA_LIMIT, Completions, decode, encode


def test_in_order_completions_move_the_committable_offset() -> None:
    completions = Completions(100)
    for offset in range(100, 105):
        completions.done(offset)
    assert completions.committable_offset == 105
    assert completions.metadata() == ""


def test_the_lowest_unfinished_offset_holds_the_commit_back() -> None:
    completions = Completions(10)
    for offset in (11, 12, 14):
        completions.done(offset)
    assert completions.committable_offset == 10
    assert completions.pending_done == 3
    assert [completions.is_done(o) for o in range(9, 16)] == [
        True,  # below the committed offset
        False,
        True,
        True,
        False,
        True,
        False,
    ]
    completions.done(10)
    assert completions.committable_offset == 13
    assert completions.pending_done == 1


def test_metadata_round_trips_through_a_commit() -> None:
    completions = Completions(1_000)
    done = [1_001, 1_002, 1_003, 1_010, 1_500, 70_000]
    for offset in done:
        completions.done(offset)
    metadata = completions.metadata()
    assert metadata.startswith("ms1:")
    restored = Completions.from_commit(completions.committable_offset, metadata)
    assert restored.committable_offset == 1_000
    assert [o for o in range(1_000, 70_001) if restored.is_done(o)] == done
    restored.done(1_000)
    assert restored.committable_offset == 1_004


@pytest.mark.parametrize("seed", range(5))
def test_random_completions_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    base = rng.randrange(10**9)
    done = set(rng.sample(range(base + 1, base + 5_000), 800))
    assert sorted(decode(base, encode(base, done))) == sorted(done)


def test_runs_keep_the_metadata_small() -> None:
    completions = Completions(0)
    for offset in range(1, 100_001):  # 100k done behind one slow record
        completions.done(offset)
    assert len(completions.metadata()) < 20
    assert not completions.full


def test_scattered_completions_fill_the_metadata_and_signal_back_pressure() -> None:
    completions = Completions(0)
    offset = 1
    while not completions.full:
        completions.done(offset)
        offset += 2  # every other record done: one (gap, run) pair each
        assert offset < 100_000, "the metadata never filled up"
    # Full as soon as it reaches the limit, so it never grows past what Kafka takes.
    assert METADATA_LIMIT <= len(completions.metadata()) < 4096
    completions.done(0)  # the slow one finishes: the commit moves past it
    assert completions.committable_offset == 2


def test_commits_without_metadata_and_foreign_metadata() -> None:
    assert Completions.from_commit(42, None).committable_offset == 42
    assert Completions.from_commit(42, "").pending_done == 0
    with pytest.raises(SerializationError, match="not millstream's"):
        Completions.from_commit(42, "written by another client")
    with pytest.raises(SerializationError, match="base64"):
        Completions.from_commit(42, "ms1:%%%")
    with pytest.raises(SerializationError, match="inside a number"):
        decode(0, "ms1:gA==")  # 0x80: a varint that never ends


def test_offsets_below_the_committed_one_are_ignored() -> None:
    completions = Completions(50)
    completions.done(10)
    assert completions.committable_offset == 50
    assert completions.pending_done == 0
