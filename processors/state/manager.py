"""The state manager: opens, restores, checkpoints and closes store partitions.

Stores follow the partitions of the source topic their step reads: when the
worker is assigned partition p of that topic, every store attached to it is
opened for p and restored from partition p of its changelog before any record
of p is processed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from millstream.errors import KafkaError
from millstream.kafka import TopicAdmin
from millstream.processors.state.backends import Backend, MemoryBackend, RocksDBBackend
from millstream.processors.state.changelog import write_changelog
from millstream.processors.state.codec import Codec
from millstream.processors.state.restore import Restorer
from millstream.processors.state.store import StorePartition

log = logging.getLogger("millstream.state")

StoreKind = Literal["memory", "rocksdb"]


@dataclass(frozen=True)
class StoreSpec:
    """A store as the topology declares it."""

    name: str
    source: str
    kind: StoreKind = "memory"
    tuple_keys: bool = False

    def changelog(self, app_id: str) -> str:
        return f"{app_id}-{self.name}-changelog"

    def codec(self) -> Codec:
        return Codec(tuple_keys=self.tuple_keys)


class StateManager:
    """Store partitions of one worker, by source topic-partition."""

    def __init__(
        self,
        app_id: str,
        specs: list[StoreSpec],
        state_dir: Path,
        restorer: Restorer,
        admin: TopicAdmin,
    ) -> None:
        self.app_id = app_id
        self.state_dir = state_dir / app_id
        self.restorer = restorer
        self._admin = admin
        self._specs: dict[str, list[StoreSpec]] = {}
        for spec in specs:
            self._specs.setdefault(spec.source, []).append(spec)
        self._codecs = {spec.name: spec.codec() for spec in specs}
        self._kinds = {spec.name: spec.kind for spec in specs}
        self.open: dict[tuple[str, int], dict[str, StorePartition]] = {}

    def has_stores(self, topic: str) -> bool:
        return topic in self._specs

    def open_partitions(
        self, partitions: list[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[dict[str, StorePartition], int | None]]:
        """Open the stores of these source topic-partitions and restore them together.

        Returns, per topic-partition, its stores and the source offset to resume from:
        the lowest offset the restored states reflect, or None when no store has a
        position.
        """
        opened: dict[tuple[str, int], dict[str, StorePartition]] = {}
        for topic, partition in partitions:
            opened[(topic, partition)] = {
                spec.name: StorePartition(
                    spec.name,
                    partition,
                    self._backend(spec, partition),
                    spec.changelog(self.app_id),
                )
                for spec in self._specs.get(topic, [])
            }
        self.restorer.restore([s for stores in opened.values() for s in stores.values()])
        result = {}
        for key, stores in opened.items():
            for store in stores.values():
                store.source_offset_applied = store.source_offset
                store.mark_committed()
            self.open[key] = stores
            positions = [s.source_offset for s in stores.values() if s.source_offset > 0]
            result[key] = (stores, min(positions) if positions else None)
        return result

    def close_partition(self, topic: str, partition: int) -> None:
        """Close the stores of a revoked partition (after its last checkpoint); files stay."""
        for store in self.open.pop((topic, partition), {}).values():
            store.close()

    def drop_partition(self, topic: str, partition: int) -> None:
        """Close the stores of a lost partition, discarding changes never checkpointed."""
        for store in self.open.pop((topic, partition), {}).values():
            store.discard()
            store.close()

    def write_changelogs(self, produce: Callable[..., Any]) -> list[StorePartition]:
        """Produce every touched store's changes and marker; returns those stores."""
        written = []
        for stores in self.open.values():
            for store in stores.values():
                if store.touched or store.changes:
                    write_changelog(store, self._codecs[store.name], produce)
                    written.append(store)
        return written

    def commit_local(self, written: list[StorePartition]) -> None:
        """Apply checkpointed changes to the backends, recording changelog positions."""
        persistent = [s for s in written if self._kinds[s.name] == "rocksdb"]
        if persistent:
            try:
                ends = self._admin.end_offsets([(s.changelog, s.partition) for s in persistent])
            except KafkaError as exc:
                # The positions only shorten a later restore: without them it replays
                # the changelog from the last recorded position, which is still correct.
                log.warning("changelog positions not recorded this time: %s", exc)
                ends = {}
            for store in persistent:
                store.pending_changelog_offset = ends.get((store.changelog, store.partition))
        for store in written:
            store.commit_local()

    def discard(self) -> None:
        """Drop every buffered change (an aborted transaction)."""
        for stores in self.open.values():
            for store in stores.values():
                store.discard()

    def close(self) -> None:
        for key in list(self.open):
            self.close_partition(*key)
        self.restorer.close()

    def _backend(self, spec: StoreSpec, partition: int) -> Backend:
        if spec.kind == "rocksdb":
            return RocksDBBackend(self.state_dir / spec.name / str(partition), spec.codec())
        return MemoryBackend(spec.codec())
