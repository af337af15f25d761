"""A store partition: the state of one store for one input partition.

Writes go to a buffer of changes; reads see the buffer first. At a checkpoint
the buffer is written to the changelog together with a position marker, and,
once the changelog is durable, applied to the backend. Nothing reaches the
backend that is not already in the changelog.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from millstream.processors.state.backends import TOMBSTONE, Backend, Position


class StorePartition:
    """Key-value state of one store for one partition. Used by one thread at a time."""

    def __init__(self, name: str, partition: int, backend: Backend, changelog: str) -> None:
        self.name = name
        self.partition = partition
        self.backend = backend
        self.changelog = changelog
        self.changes: dict[Any, Any] = {}
        #: Step-owned metadata persisted with the position (e.g. stream time).
        self.meta: dict[str, Any] = {}
        #: The source offset up to which this state reflects its input.
        self.source_offset = 0
        #: After a restore: records below this source offset are already in the state.
        self.source_offset_applied = 0
        #: Set when records were processed since the last checkpoint.
        self.touched = False
        #: Changelog offset after the last marker produced, known once delivered.
        self.pending_changelog_offset: int | None = None
        self.changelog_offset = 0
        self._committed: tuple[int, dict[str, Any]] = (0, {})

    def get(self, key: Any, default: Any = None) -> Any:
        changes = self.changes
        value = changes[key] if key in changes else self.backend.get(key)
        return default if value is TOMBSTONE else value

    def __contains__(self, key: Any) -> bool:
        return self.get(key, TOMBSTONE) is not TOMBSTONE

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, TOMBSTONE)
        if value is TOMBSTONE:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.set(key, value)

    def set(self, key: Any, value: Any) -> None:
        self.changes[key] = value

    def delete(self, key: Any) -> None:
        self.changes[key] = TOMBSTONE

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Every live entry: the backend overlaid with buffered changes."""
        changes = self.changes
        for key, value in self.backend.items():
            if key not in changes:
                yield key, value
        for key, value in list(changes.items()):
            if value is not TOMBSTONE:
                yield key, value

    def __len__(self) -> int:
        """Entries in the backend (an estimate for RocksDB; buffered changes not counted)."""
        return len(self.backend)

    def position(self) -> Position:
        return Position(self.changelog_offset, self.source_offset, dict(self.meta))

    def commit_local(self) -> None:
        """Apply the buffered changes to the backend, now that the changelog holds them."""
        if self.pending_changelog_offset is not None:
            self.changelog_offset = self.pending_changelog_offset
        self.backend.apply(self.changes, self.position())
        self.changes = {}
        self.pending_changelog_offset = None
        self.touched = False
        self.mark_committed()

    def mark_committed(self) -> None:
        """Remember the current source offset and metadata as the committed ones."""
        self._committed = (self.source_offset, dict(self.meta))

    def discard(self) -> None:
        """Drop buffered changes and return to the last committed source offset and
        metadata (the transaction that made the changes did not commit)."""
        self.changes = {}
        self.pending_changelog_offset = None
        self.touched = False
        self.source_offset, meta = self._committed
        self.meta = dict(meta)

    def close(self) -> None:
        self.backend.close()
