"""Store partitions (processors/state/store.py) over both backends (backends.py).

One contract, :class:`StoreContract`, runs against the memory backend and against
RocksDB: what a store promises must not depend on where it keeps its data. What
only a persistent backend can do (keep its data and position across a reopen) is
tested on RocksDB alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from millstream.processors.state.backends import (
    TOMBSTONE,
    Backend,
    MemoryBackend,
    Position,
    RocksDBBackend,
)
from millstream.processors.state.codec import Codec
from millstream.processors.state.store import NO_TIME, StorePartition


class StoreContract(ABC):
    """What every store partition does, whatever its backend."""

    @abstractmethod
    def backend(self, path: Path, codec: Codec) -> Backend: ...

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[StorePartition]:
        store = self.open(tmp_path, Codec())
        yield store
        store.close()

    def open(self, path: Path, codec: Codec) -> StorePartition:
        backend = self.backend(path / "db", codec)
        return StorePartition("counts", 0, backend, "app-counts-changelog", codec)

    def committed(self, store: StorePartition, entries: dict[Any, Any]) -> StorePartition:
        for key, value in entries.items():
            store.set(key, value)
        store.commit_local()
        return store

    # -- reads and writes -------------------------------------------------------------

    def test_reads_see_buffered_changes_before_the_backend_does(
        self, store: StorePartition
    ) -> None:
        store["a"] = 1
        store.set("b", {"n": 2})
        assert store.get("a") == 1
        assert store["b"] == {"n": 2}
        assert "a" in store
        assert store.backend.get("a") is TOMBSTONE, "nothing reaches the backend before commit"
        assert store.changes() == {"a": 1, "b": {"n": 2}}

    def test_a_missing_key(self, store: StorePartition) -> None:
        assert store.get("nope") is None
        assert store.get("nope", 0) == 0
        assert "nope" not in store
        with pytest.raises(KeyError):
            store["nope"]

    def test_a_buffered_change_hides_the_committed_value(self, store: StorePartition) -> None:
        self.committed(store, {"a": 1})
        store["a"] = 2
        assert store["a"] == 2
        assert store.backend.get("a") == 1

    def test_a_delete_is_a_tombstone_until_the_commit_removes_the_key(
        self, store: StorePartition
    ) -> None:
        self.committed(store, {"a": 1, "b": 2})
        store.delete("a")
        assert "a" not in store
        assert store.get("a", "gone") == "gone"
        with pytest.raises(KeyError):
            store["a"]
        assert store.changes() == {"a": TOMBSTONE}
        assert store.backend.get("a") == 1
        store.commit_local()
        assert store.backend.get("a") is TOMBSTONE
        assert dict(store.items()) == {"b": 2}

    def test_deleting_a_key_never_committed(self, store: StorePartition) -> None:
        store["new"] = 1
        store.delete("new")
        assert "new" not in store
        store.commit_local()
        assert dict(store.items()) == {}

    def test_items_overlay_the_buffer_on_the_backend(self, store: StorePartition) -> None:
        self.committed(store, {"a": 1, "b": 2, "c": 3})
        store["b"] = 20
        store.delete("c")
        store["d"] = 4
        assert dict(store.items()) == {"a": 1, "b": 20, "d": 4}
        assert sorted(k for k, _ in store.items()) == ["a", "b", "d"], "no key twice"

    def test_values_come_back_equal(self, store: StorePartition) -> None:
        value = {"start": 0, "end": 10, "value": [1.5, None, "x"]}
        self.committed(store, {"k": value})
        assert store["k"] == value
        assert dict(store.items()) == {"k": value}

    def test_window_keys_stay_tuples(self, tmp_path: Path) -> None:
        store = self.open(tmp_path, Codec(tuple_keys=True))
        self.committed(store, {("card-1", 0, 10_000): 3})
        assert dict(store.items()) == {("card-1", 0, 10_000): 3}
        assert store[("card-1", 0, 10_000)] == 3
        store.close()

    # -- position ------------------------------------------------------------------------

    def test_a_new_store_has_no_position(self, store: StorePartition) -> None:
        assert store.source_offset == 0
        assert store.stream_time == NO_TIME
        assert not store.needs_checkpoint

    def test_advancing_or_moving_stream_time_needs_a_checkpoint(
        self, store: StorePartition
    ) -> None:
        store.advance(3)
        assert store.needs_checkpoint
        assert store.source_offset == 3
        store.commit_local()
        assert not store.needs_checkpoint
        store.set_stream_time(1_000)
        assert store.needs_checkpoint
        assert store.marker() == (3, {"st": 1_000})

    def test_commit_local_applies_the_changes_and_records_the_position(
        self, store: StorePartition
    ) -> None:
        store["a"] = 1
        store.advance(7)
        store.set_stream_time(1_234)
        store.changelog_written(42)
        store.commit_local()
        assert store.backend.get("a") == 1
        assert store.changes() == {}
        assert not store.needs_checkpoint
        assert store.position() == Position(42, 7, {"st": 1_234})

    def test_an_unknown_changelog_end_keeps_the_last_one(self, store: StorePartition) -> None:
        store.changelog_written(10)
        store.commit_local()
        store.advance(5)
        store.changelog_written(None)
        store.commit_local()
        assert store.position().changelog_offset == 10
        assert store.position().source_offset == 5

    def test_discard_returns_to_the_committed_position(self, store: StorePartition) -> None:
        store["a"] = 1
        store.advance(5)
        store.set_stream_time(100)
        store.commit_local()
        store["a"] = 2
        store.delete("a")
        store["b"] = 3
        store.advance(9)
        store.set_stream_time(200)
        store.changelog_written(99)
        store.discard()
        assert dict(store.items()) == {"a": 1}
        assert store.source_offset == 5
        assert store.stream_time == 100
        assert store.replayed_below == 5, "input below the commit is not applied twice"
        assert not store.needs_checkpoint
        store.commit_local()
        assert store.position().changelog_offset == 0, "the discarded end is forgotten"

    def test_discard_before_any_commit_empties_the_store(self, store: StorePartition) -> None:
        store["a"] = 1
        store.advance(4)
        store.set_stream_time(50)
        store.discard()
        assert dict(store.items()) == {}
        assert (store.source_offset, store.stream_time) == (0, NO_TIME)

    def test_opened_marks_what_the_state_reflects_already(self, store: StorePartition) -> None:
        store.adopt(Position(12, 8, {"st": 77}))
        store.opened()
        assert (store.source_offset, store.stream_time, store.replayed_below) == (8, 77, 8)
        store.caught_up()
        assert store.replayed_below == 0
        store.discard()
        assert (store.source_offset, store.stream_time) == (8, 77)

    def test_changelog_bytes_apply_like_objects(self, store: StorePartition) -> None:
        """The restore path: changelog records applied as bytes, None deleting."""
        self.committed(store, {"gone": 1})
        marker = Position(3, 2, {"st": 5})
        store.backend.apply_encoded({b'"a"': b'{"n":1}', b'"gone"': None}, marker)
        assert dict(store.items()) == {"a": {"n": 1}}


class TestMemoryStore(StoreContract):
    def backend(self, path: Path, codec: Codec) -> Backend:
        return MemoryBackend(codec)

    def test_the_memory_backend_keeps_no_position(self, store: StorePartition) -> None:
        store.advance(3)
        store.commit_local()
        assert store.backend.position() is None

    def test_its_length_counts_committed_entries(self, store: StorePartition) -> None:
        self.committed(store, {"a": 1, "b": 2})
        store["c"] = 3
        assert len(store) == 2


class TestRocksDBStore(StoreContract):
    def backend(self, path: Path, codec: Codec) -> Backend:
        return RocksDBBackend(path, codec)

    def test_the_backend_records_the_committed_position(self, store: StorePartition) -> None:
        store["a"] = 1
        store.advance(7)
        store.set_stream_time(1_234)
        store.changelog_written(42)
        store.commit_local()
        assert store.backend.position() == Position(42, 7, {"st": 1_234})

    def test_data_and_position_survive_a_reopen(self, tmp_path: Path) -> None:
        store = self.open(tmp_path, Codec(tuple_keys=True))
        store[("k", 0, 10)] = 3
        store.advance(11)
        store.set_stream_time(9)
        store.changelog_written(6)
        store.commit_local()
        store["uncommitted"] = 1
        store.close()

        reopened = self.open(tmp_path, Codec(tuple_keys=True))
        position = reopened.backend.position()
        assert position == Position(6, 11, {"st": 9})
        reopened.adopt(position)
        reopened.opened()
        assert dict(reopened.items()) == {("k", 0, 10): 3}
        assert (reopened.source_offset, reopened.stream_time) == (11, 9)
        reopened.close()

    def test_a_position_from_changelog_bytes_survives_a_reopen(self, tmp_path: Path) -> None:
        store = self.open(tmp_path, Codec())
        store.backend.apply_encoded({b'"a"': b"1"}, Position(4, 3, {}))
        store.close()
        reopened = self.open(tmp_path, Codec())
        assert reopened.backend.position() == Position(4, 3, {})
        assert reopened["a"] == 1
        reopened.close()
