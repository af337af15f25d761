"""The state manager: opens, restores, checkpoints and closes store partitions.

Stores follow the partitions of the source topic their step reads: when the
worker is assigned partition p of that topic, every store attached to it is
opened for p and restored from partition p of its changelog before any record
of p is processed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from millstream.errors import KafkaError
from millstream.kafka import TopicAdmin
from millstream.processors.state.backends import Backend, MemoryBackend, RocksDBBackend
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
    """Opens and restores the store partitions of one worker; records changelog positions.

    It keeps no store itself: each :class:`~millstream.processors.assigned.AssignedPartition`
    owns the stores it was given and closes them.
    """

    def __init__(
        self,
        app_id: str,
        specs: list[StoreSpec],
        state_dir: Path,
        restorer: Restorer | None,
        admin: TopicAdmin | None,
    ) -> None:
        """Without a ``restorer`` stores open empty; without an ``admin`` changelog
        positions are not recorded (both for running without a broker)."""
        self.app_id = app_id
        self.state_dir = state_dir / app_id
        self.restorer = restorer
        self._admin = admin
        self._specs: dict[str, list[StoreSpec]] = {}
        for spec in specs:
            self._specs.setdefault(spec.source, []).append(spec)

    def has_stores(self, topic: str) -> bool:
        return topic in self._specs

    def open_partitions(
        self, partitions: list[tuple[str, int]]
    ) -> dict[tuple[str, int], dict[str, StorePartition]]:
        """Open the stores of these source topic-partitions and restore them together.

        Blocks for as long as the restore takes. Returns, per topic-partition, its stores
        by name, each at the position its changelog ends with.
        """
        opened: dict[tuple[str, int], dict[str, StorePartition]] = {}
        for topic, partition in partitions:
            opened[(topic, partition)] = {
                spec.name: StorePartition(
                    spec.name,
                    partition,
                    self._backend(spec, partition),
                    spec.changelog(self.app_id),
                    spec.codec(),
                    persistent=spec.kind == "rocksdb",
                )
                for spec in self._specs.get(topic, [])
            }
        if self.restorer is not None:
            self.restorer.restore([s for stores in opened.values() for s in stores.values()])
        for stores in opened.values():
            for store in stores.values():
                store.opened()
        return opened

    def record_changelog_ends(self, written: list[StorePartition]) -> None:
        """Tell each persistent store where its changelog ends after a checkpoint's writes,
        so that a later restore on the same disk starts there. Best effort."""
        persistent = [s for s in written if s.persistent]
        if not persistent or self._admin is None:
            return
        try:
            ends = self._admin.end_offsets([(s.changelog, s.partition) for s in persistent])
        except KafkaError as exc:
            # The positions only shorten a later restore: without them it replays
            # the changelog from the last recorded position, which is still correct.
            log.warning("changelog positions not recorded this time: %s", exc)
            ends = {}
        for store in persistent:
            store.changelog_written(ends.get((store.changelog, store.partition)))

    def close(self) -> None:
        if self.restorer is not None:
            self.restorer.close()

    def _backend(self, spec: StoreSpec, partition: int) -> Backend:
        if spec.kind == "rocksdb":
            return RocksDBBackend(self.state_dir / spec.name / str(partition), spec.codec())
        return MemoryBackend(spec.codec())
