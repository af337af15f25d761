"""An assigned partition owns its progress: lifecycle, two-phase commit, rewinds."""

from __future__ import annotations

from typing import Any

import pytest

from millstream.errors import IllegalTransition
from millstream.processors.assigned import AssignedPartition, PartitionState
from millstream.processors.state.backends import TOMBSTONE, MemoryBackend
from millstream.processors.state.changelog import MARKER_KEY, decode_marker
from millstream.processors.state.codec import Codec
from millstream.processors.state.store import StorePartition

Sent = list[tuple[str, int, bytes, bytes | None]]


def stateful(source_offset: int = 0) -> tuple[AssignedPartition, StorePartition]:
    store = StorePartition("counts", 0, MemoryBackend(Codec()), "app-counts-changelog", Codec())
    if source_offset:
        store.advance(source_offset)
        store.commit_local()
    store.opened()
    return AssignedPartition("in", 0, {"counts": store}), store


def sender(sent: Sent) -> Any:
    return lambda topic, partition, key, value: sent.append((topic, partition, key, value))


def test_a_stateless_partition_runs_at_once_and_a_stateful_one_restores_first() -> None:
    assert AssignedPartition("in", 0).state is PartitionState.RUNNING
    part, _ = stateful()
    assert part.state is PartitionState.RESTORING
    part.restored()
    part.suspend()
    part.resume()
    part.close(lost=False)
    assert part.state is PartitionState.CLOSED


def test_illegal_transitions_raise() -> None:
    part = AssignedPartition("in", 0)
    part.close(lost=False)
    with pytest.raises(IllegalTransition, match="closed -> running"):
        part.resume()
    with pytest.raises(IllegalTransition, match="running -> running"):
        AssignedPartition("in", 1).resume()


def test_two_phases_write_the_changelog_then_apply_and_commit() -> None:
    part, store = stateful()
    part.restored()
    part.processed(5)
    store.set("card-1", 3)
    sent: Sent = []
    written = part.prepare_commit(sender(sent))
    assert written == [store]
    assert [(key, value) for _, _, key, value in sent[:1]] == [(b'"card-1"', b"3")]
    assert sent[-1][2] == MARKER_KEY and decode_marker(sent[-1][3])[0] == 5
    assert store.backend.get("card-1") is TOMBSTONE  # not applied before the commit
    assert part.committable_offset() == 5

    part.post_commit(offsets_committed=True)
    assert store.backend.get("card-1") == 3
    assert part.committable_offset() is None


def test_offsets_not_committed_are_offered_again_but_the_state_is_applied() -> None:
    part, store = stateful()
    part.restored()
    part.processed(5)
    store.set("k", 1)
    part.prepare_commit(sender([]))
    part.post_commit(offsets_committed=False)
    assert store.backend.get("k") == 1
    assert part.committable_offset() == 5


def test_discard_returns_to_the_last_commit_and_skips_what_the_state_reflects() -> None:
    part, store = stateful()
    part.restored()
    part.processed(10)
    part.prepare_commit(sender([]))
    part.post_commit(offsets_committed=True)
    part.processed(20)
    store.set("k", 1)
    part.discard()
    assert store.get("k") is None
    assert store.source_offset == 10
    assert store.replayed_below == 10
    assert part.next_offset == 10
    assert part.committable_offset() is None


def test_resume_offset_is_the_lowest_store_position() -> None:
    behind = StorePartition("a", 0, MemoryBackend(Codec()), "a-changelog", Codec())
    ahead = StorePartition("b", 0, MemoryBackend(Codec()), "b-changelog", Codec())
    for store, offset in ((behind, 40), (ahead, 90)):
        store.advance(offset)
        store.commit_local()
        store.opened()
    part = AssignedPartition("in", 0, {"a": behind, "b": ahead})
    assert part.resume_offset() == 40
    assert ahead.replayed_below == 90
    assert AssignedPartition("in", 1).resume_offset() is None


def test_only_committed_offsets_of_purgeable_partitions_are_purged() -> None:
    part = AssignedPartition("app-x-repartition", 2, purgeable=True)
    part.processed(8)
    assert part.purgeable_offsets() == {}
    part.prepare_commit(sender([]))
    part.post_commit(offsets_committed=True)
    assert part.purgeable_offsets() == {("app-x-repartition", 2): 8}
    plain = AssignedPartition("in", 0)
    plain.processed(8)
    plain.prepare_commit(sender([]))
    plain.post_commit(offsets_committed=True)
    assert plain.purgeable_offsets() == {}
