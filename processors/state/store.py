"""A store partition: the state of one store for one input partition.

Writes go to a buffer of changes; reads see the buffer first. At a checkpoint
the buffer is written to the changelog together with a position marker, and,
once the changelog is durable, applied to the backend. Nothing reaches the
backend that is not already in the changelog.

Besides its data a store partition knows its *position*: the source offset up to
which it reflects its input, the step's stream time, and the changelog offset
after its last applied marker. The position moves forward with :meth:`advance`,
is written with every marker, and goes back to the last committed one on
:meth:`discard`. Everything else reads it through methods; only this class
writes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from millstream.processors.state.backends import TOMBSTONE, Backend, Position
from millstream.processors.state.codec import Codec

#: Stream time before any record: far in the past.
NO_TIME = -(2**62)

_STREAM_TIME = "st"


class StorePartition:
    """Key-value state of one store for one partition. Used by one thread at a time."""

    def __init__(
        self,
        name: str,
        partition: int,
        backend: Backend,
        changelog: str,
        codec: Codec,
        *,
        persistent: bool = False,
    ) -> None:
        self.name = name
        self.partition = partition
        self.backend = backend
        self.changelog = changelog
        self.codec = codec
        #: Whether the backend keeps its data across restarts (its position then
        #: shortens the next restore).
        self.persistent = persistent
        self._changes: dict[Any, Any] = {}
        self._meta: dict[str, Any] = {}
        self._source_offset = 0
        self._replayed_below = 0
        self._touched = False
        self._pending_changelog_offset: int | None = None
        self._changelog_offset = 0
        self._committed: tuple[int, dict[str, Any]] = (0, {})

    # -- data -----------------------------------------------------------------------

    def get(self, key: Any, default: Any = None) -> Any:
        changes = self._changes
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
        self._changes[key] = value

    def set(self, key: Any, value: Any) -> None:
        self._changes[key] = value

    def delete(self, key: Any) -> None:
        self._changes[key] = TOMBSTONE

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Every live entry: the backend overlaid with buffered changes."""
        changes = self._changes
        for key, value in self.backend.items():
            if key not in changes:
                yield key, value
        for key, value in list(changes.items()):
            if value is not TOMBSTONE:
                yield key, value

    def __len__(self) -> int:
        """Entries in the backend (an estimate for RocksDB; buffered changes not counted)."""
        return len(self.backend)

    def changes(self) -> dict[Any, Any]:
        """The changes buffered since the last checkpoint (TOMBSTONE for deletes). Read only."""
        return self._changes

    # -- position ---------------------------------------------------------------------

    def advance(self, source_offset: int) -> None:
        """The input of this partition was processed up to ``source_offset`` (exclusive)."""
        self._source_offset = source_offset
        self._touched = True

    @property
    def source_offset(self) -> int:
        """The source offset up to which this state reflects its input (0: none yet)."""
        return self._source_offset

    @property
    def stream_time(self) -> int:
        """The step's stream time (largest event time seen), persisted with the position."""
        return int(self._meta.get(_STREAM_TIME, NO_TIME))

    def set_stream_time(self, stream_time: int) -> None:
        """Move the stream time (it is written with the next marker)."""
        self._meta[_STREAM_TIME] = stream_time
        self._touched = True

    @property
    def needs_checkpoint(self) -> bool:
        """Whether anything changed since the last checkpoint (data or position)."""
        return self._touched or bool(self._changes)

    @property
    def replayed_below(self) -> int:
        """After a restore: input below this offset is in the state already (0: none)."""
        return self._replayed_below

    def caught_up(self) -> None:
        """The input has passed :attr:`replayed_below`; no record needs skipping any more."""
        self._replayed_below = 0

    def marker(self) -> tuple[int, dict[str, Any]]:
        """What the next changelog marker records: source offset and metadata."""
        return self._source_offset, self._meta

    def position(self) -> Position:
        return Position(self._changelog_offset, self._source_offset, dict(self._meta))

    def adopt(self, position: Position) -> None:
        """Take the position a backend kept (before replaying the changelog after it)."""
        self._changelog_offset = position.changelog_offset
        self._source_offset = position.source_offset
        self._meta = dict(position.meta)

    def changelog_starts_at(self, offset: int) -> None:
        """The changelog holds nothing before ``offset`` (compacted or deleted)."""
        self._changelog_offset = max(self._changelog_offset, offset)

    def opened(self) -> None:
        """The restore is over: the position is the committed one, and input below it
        must not be applied again."""
        self._replayed_below = self._source_offset
        self._committed = (self._source_offset, dict(self._meta))

    # -- checkpoint ---------------------------------------------------------------------

    def changelog_written(self, end_offset: int | None) -> None:
        """The changes and a marker were produced; ``end_offset`` is the changelog's end
        after them, when known (it shortens the next restore of a persistent store)."""
        self._pending_changelog_offset = end_offset

    def commit_local(self) -> None:
        """Apply the buffered changes to the backend, now that the changelog holds them."""
        if self._pending_changelog_offset is not None:
            self._changelog_offset = self._pending_changelog_offset
        self.backend.apply(self._changes, self.position())
        self._changes = {}
        self._pending_changelog_offset = None
        self._touched = False
        self._committed = (self._source_offset, dict(self._meta))

    def discard(self) -> None:
        """Drop buffered changes and return to the last committed source offset and
        metadata (the transaction that made the changes did not commit). The input is
        rewound; records below the committed position are skipped, not applied twice."""
        self._changes = {}
        self._pending_changelog_offset = None
        self._touched = False
        self._source_offset, meta = self._committed
        self._meta = dict(meta)
        self._replayed_below = self._source_offset

    def close(self) -> None:
        self.backend.close()
