"""One input partition a worker owns, and everything that belongs to it.

An :class:`AssignedPartition` is the single owner of a partition's progress: the
offset processed up to, the offset last committed, its state stores (with their
positions and stream times) and the in-memory views that steps keep of them
(window indexes). Pipeline steps receive it with every batch; the checkpoint asks
it what can be committed and tells it what was.

Lifecycle (a transition not drawn here raises)::

                 restored               suspend()              close()
    RESTORING ──────────────► RUNNING ───────────► SUSPENDED ──────────► CLOSED
                                 ▲                     │
                                 └──── resume() ───────┘
    close() from RESTORING or RUNNING as well (the partition was lost, or the worker stops)

``SUSPENDED`` is a partition that is still owned but takes no input: it is between
its last checkpoint and its release on a revoke, or its input is paused.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from millstream.errors import IllegalTransition
from millstream.processors.state.changelog import ChangelogSend, write_changelog
from millstream.processors.state.store import StorePartition


class PartitionState(Enum):
    RESTORING = "restoring"
    RUNNING = "running"
    SUSPENDED = "suspended"
    CLOSED = "closed"


_ALLOWED: dict[PartitionState, frozenset[PartitionState]] = {
    PartitionState.RESTORING: frozenset({PartitionState.RUNNING, PartitionState.CLOSED}),
    PartitionState.RUNNING: frozenset({PartitionState.SUSPENDED, PartitionState.CLOSED}),
    PartitionState.SUSPENDED: frozenset({PartitionState.RUNNING, PartitionState.CLOSED}),
    PartitionState.CLOSED: frozenset(),
}


class AssignedPartition:
    """A partition's progress, stores and step views. Used by the worker's thread only."""

    __slots__ = (
        "_committed_offset",
        "_next_offset",
        "_offered",
        "_state",
        "_written",
        "partition",
        "purgeable",
        "stores",
        "topic",
        "views",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        stores: dict[str, StorePartition] | None = None,
        *,
        purgeable: bool = False,
    ) -> None:
        self.topic = topic
        self.partition = partition
        #: This partition's stores, by store name.
        self.stores: dict[str, StorePartition] = stores or {}
        #: What steps keep in memory about this partition (window indexes), by step.
        self.views: dict[str, Any] = {}
        #: Whether records below the committed offset may be deleted (a repartition topic).
        self.purgeable = purgeable
        self._state = PartitionState.RESTORING if self.stores else PartitionState.RUNNING
        self._next_offset: int | None = None
        self._committed_offset: int | None = None
        self._offered: int | None = None
        self._written: list[StorePartition] = []

    # -- lifecycle --------------------------------------------------------------------

    @property
    def state(self) -> PartitionState:
        return self._state

    def _move(self, target: PartitionState) -> None:
        if target not in _ALLOWED[self._state]:
            raise IllegalTransition(
                f"{self}: {self._state.value} -> {target.value} is not a legal transition"
            )
        self._state = target

    def restored(self) -> None:
        """Its stores are restored: records may be processed."""
        self._move(PartitionState.RUNNING)

    def suspend(self) -> None:
        """Take no more input (a revoke is under way, or its input is paused)."""
        self._move(PartitionState.SUSPENDED)

    def resume(self) -> None:
        self._move(PartitionState.RUNNING)

    def close(self, *, lost: bool) -> None:
        """Release the partition and close its stores (their files stay on disk). With
        ``lost``, changes never checkpointed are dropped first: another worker may have
        written the changelogs since."""
        for store in self.stores.values():
            if lost:
                store.discard()
            store.close()
        self.views.clear()
        self._move(PartitionState.CLOSED)

    # -- processing ---------------------------------------------------------------------

    def store(self, name: str) -> StorePartition:
        try:
            return self.stores[name]
        except KeyError:
            raise KeyError(f"store {name!r} is not attached to {self}") from None

    def processed(self, next_offset: int) -> None:
        """A batch up to ``next_offset`` (exclusive) is about to go through the steps."""
        self._next_offset = next_offset
        for store in self.stores.values():
            store.advance(next_offset)

    @property
    def next_offset(self) -> int | None:
        """The offset after the last record processed, or None before the first batch."""
        return self._next_offset

    def resume_offset(self) -> int | None:
        """Where input resumes when the group has no committed offset: the lowest
        position of its stores (a store ahead skips what it reflects already), or None
        when no store has one."""
        positions = [s.source_offset for s in self.stores.values() if s.source_offset > 0]
        return min(positions) if positions else None

    # -- checkpoints --------------------------------------------------------------------

    def committable_offset(self) -> int | None:
        """The offset to commit for this partition now, or None when nothing is new."""
        offset = self._next_offset
        if offset is None or offset == self._committed_offset:
            return None
        return offset

    def prepare_commit(self, send: ChangelogSend) -> list[StorePartition]:
        """First phase: send every changed store's changes and position marker through
        ``send``, and remember the offset offered for commit. Returns the stores written."""
        self._offered = self.committable_offset()
        self._written = [s for s in self.stores.values() if s.needs_checkpoint]
        for store in self._written:
            write_changelog(store, send)
        return self._written

    def post_commit(self, *, offsets_committed: bool) -> None:
        """Second phase, once the changelog writes are durable: apply them to the stores;
        and when the offsets were committed too, that is the committed offset now."""
        for store in self._written:
            store.commit_local()
        self._written = []
        if offsets_committed and self._offered is not None:
            self._committed_offset = self._offered
        self._offered = None

    def discard(self) -> None:
        """Forget everything since the last commit (its transaction was aborted): the
        stores go back to their committed state; input is rewound by the caller."""
        for store in self.stores.values():
            store.discard()
        self._next_offset = self._committed_offset
        self._written = []
        self._offered = None

    #: Whether input goes back to the committed offset after an aborted transaction
    #: (a task partition keeps its place and sends its outcomes again instead).
    rewinds = True

    def commit_metadata(self) -> str:
        """The metadata to commit with the offered offset ("" for none)."""
        return ""

    def purgeable_offsets(self) -> dict[tuple[str, int], int]:
        """Records this worker consumed and committed, which nobody needs again."""
        if not self.purgeable or self._committed_offset is None:
            return {}
        return {(self.topic, self.partition): self._committed_offset}

    def __repr__(self) -> str:
        return f"{self.topic}[{self.partition}]"
