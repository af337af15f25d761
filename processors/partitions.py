"""The partitions a worker owns: an :class:`AssignedPartition` per input partition,
taken (stores restored) on assignment and closed on revocation.

The worker's rebalance callbacks decide when (and commit around it); this module
does the taking and releasing, and runs the two commit phases over every owned
partition for the checkpoint. Not thread-safe: the worker's thread only.
"""

from __future__ import annotations

from millstream.kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from millstream.processors.assigned import AssignedPartition, PartitionState
from millstream.processors.state.changelog import ChangelogSend
from millstream.processors.state.manager import StateManager
from millstream.processors.state.store import StorePartition
from millstream.processors.topology import Topology


class OwnedPartitions:
    """The assigned partitions, by (topic, partition), and their state when there is any."""

    def __init__(self, topology: Topology, state: StateManager | None) -> None:
        self.topology = topology
        self.state = state
        self.assigned: dict[tuple[str, int], AssignedPartition] = {}
        self._purgeable = topology.repartition_topics()
        #: True while a restore runs (the worker is not ready meanwhile).
        self.restoring = False

    @property
    def restored_records(self) -> int:
        restorer = self.state.restorer if self.state is not None else None
        return restorer.restored_records if restorer is not None else 0

    def restore_progress(self) -> list[tuple[str, int, int, int]]:
        """(store, partition, offsets replayed, offsets to replay) of each store
        partition's latest restore, the one running included."""
        restorer = self.state.restorer if self.state is not None else None
        if restorer is None:
            return []
        return [(name, p, *r.counts()) for (name, p), r in list(restorer.progress.items())]

    def get(self, topic: str, partition: int) -> AssignedPartition:
        """The partition, taken now if the consumer handed out records before it was
        announced (a stateless partition needs nothing restored)."""
        part = self.assigned.get((topic, partition))
        if part is None:
            part = self._new(topic, partition, {})
        return part

    def have_state(self, partitions: list[TopicPartition]) -> bool:
        """Whether taking ``partitions`` opens (and may restore) state stores."""
        state = self.state
        return state is not None and any(state.has_stores(tp.topic) for tp in partitions)

    def take(self, partitions: list[TopicPartition]) -> None:
        """Own ``partitions``. Their stores are restored first, all together; where the
        stores know the offset their state is at, ``tp.offset`` is set to resume there.

        Blocks for as long as the restore takes.
        """
        state = self.state
        stateful = [
            (tp.topic, tp.partition)
            for tp in partitions
            if state is not None and state.has_stores(tp.topic)
        ]
        opened: dict[tuple[str, int], dict[str, StorePartition]] = {}
        if state is not None and stateful:
            self.restoring = True
            try:
                opened = state.open_partitions(stateful)
            finally:
                self.restoring = False
        for tp in partitions:
            part = self._new(tp.topic, tp.partition, opened.get((tp.topic, tp.partition), {}))
            if part.state is PartitionState.RESTORING:
                self._open_views(part)
                part.restored()
            seek = part.resume_offset()
            if seek is not None:
                tp.offset = seek

    def release(self, partitions: list[TopicPartition], *, lost: bool) -> None:
        """Stop owning ``partitions``: close their stores, or drop their unsaved changes
        when ``lost`` (another worker may have written their changelogs since)."""
        for tp in partitions:
            part = self.assigned.pop((tp.topic, tp.partition), None)
            if part is not None:
                part.close(lost=lost)

    def suspend(self, partitions: list[TopicPartition]) -> None:
        """Stop feeding ``partitions`` (they are about to be released)."""
        for tp in partitions:
            part = self.assigned.get((tp.topic, tp.partition))
            if part is not None and part.state is PartitionState.RUNNING:
                part.suspend()

    # -- checkpoints --------------------------------------------------------------------

    def prepare_commit(self, send: ChangelogSend) -> list[StorePartition]:
        """Phase one on every partition; returns the stores whose changelogs were written."""
        written: list[StorePartition] = []
        for part in self.assigned.values():
            written += part.prepare_commit(send)
        return written

    def committable_offsets(self) -> list[tuple[str, int, int]]:
        offsets = []
        for part in self.assigned.values():
            offset = part.committable_offset()
            if offset is not None:
                offsets.append((part.topic, part.partition, offset))
        return offsets

    def commit_metadata(self) -> dict[tuple[str, int], str]:
        """The commit metadata of the partitions that offer some with their offsets."""
        found = {}
        for part in self.assigned.values():
            metadata = part.commit_metadata()
            if metadata:
                found[(part.topic, part.partition)] = metadata
        return found

    def rewind(self, consumer: Consumer, timeout: float) -> None:
        """Seek every assigned partition that rewinds after an abort to its committed
        offset (or where its stores resume, when nothing was committed)."""
        assigned = [tp for tp in consumer.assignment() if self._rewinds(tp.topic, tp.partition)]
        if not assigned:
            return
        for tp in consumer.committed(assigned, timeout=timeout):
            offset = tp.offset
            if offset < 0:
                offset = self.resume_offset(tp.topic, tp.partition) or OFFSET_BEGINNING
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def _rewinds(self, topic: str, partition: int) -> bool:
        part = self.assigned.get((topic, partition))
        return part is None or part.rewinds

    def post_commit(self, *, offsets_committed: bool) -> None:
        """Phase two on every partition."""
        for part in self.assigned.values():
            part.post_commit(offsets_committed=offsets_committed)

    def discard_uncommitted(self) -> None:
        """Return every partition to its last commit and rebuild the steps' views of its
        stores (window indexes, stream time): after an aborted transaction."""
        for part in self.assigned.values():
            part.discard()
            if part.stores:
                self._open_views(part)

    def purgeable_offsets(self) -> dict[tuple[str, int], int]:
        offsets: dict[tuple[str, int], int] = {}
        for part in self.assigned.values():
            offsets.update(part.purgeable_offsets())
        return offsets

    def resume_offset(self, topic: str, partition: int) -> int | None:
        part = self.assigned.get((topic, partition))
        return part.resume_offset() if part is not None else None

    def punctuate(self, now: float) -> None:
        """Let stateful steps act on time (idle windows close) in every owned partition."""
        for step in self.topology.stateful:
            for part in list(self.assigned.values()):
                if part.topic == step.source and part.state is PartitionState.RUNNING:
                    step.punctuate(part, now)

    def close(self) -> None:
        """Release everything; the stores close (their data stays on disk)."""
        for part in self.assigned.values():
            part.close(lost=False)
        self.assigned.clear()
        if self.state is not None:
            self.state.close()
            self.state = None

    def _new(
        self, topic: str, partition: int, stores: dict[str, StorePartition]
    ) -> AssignedPartition:
        kind = self.topology.partition_types.get(topic, AssignedPartition)
        part = kind(topic, partition, stores, purgeable=topic in self._purgeable)
        self.assigned[(topic, partition)] = part
        return part

    def _open_views(self, part: AssignedPartition) -> None:
        for step in self.topology.stateful_steps(part.topic):
            step.open_partition(part)
