"""The partitions a worker owns: one context per input partition, with the state
stores of a stateful partition restored when it is taken and closed when it goes.

The worker's rebalance callbacks decide when (and commit around it); this module
does the taking and releasing. Not thread-safe: the worker's thread only.
"""

from __future__ import annotations

from millstream.kafka import OFFSET_BEGINNING, TopicPartition
from millstream.processors.context import PartitionContext
from millstream.processors.state.manager import StateManager
from millstream.processors.state.store import StorePartition
from millstream.processors.topology import Topology


class OwnedPartitions:
    """Contexts of the assigned partitions, and their state when the topology has any."""

    def __init__(self, topology: Topology, state: StateManager | None) -> None:
        self.topology = topology
        self.state = state
        #: (topic, partition) -> context, for every partition owned right now.
        self.contexts: dict[tuple[str, int], PartitionContext] = {}
        #: True while a restore runs (the worker is not ready meanwhile).
        self.restoring = False

    @property
    def restored_records(self) -> int:
        return self.state.restorer.restored_records if self.state is not None else 0

    def have_state(self, partitions: list[TopicPartition]) -> bool:
        """Whether taking ``partitions`` opens (and may restore) state stores."""
        state = self.state
        return state is not None and any(state.has_stores(tp.topic) for tp in partitions)

    def take(self, partitions: list[TopicPartition]) -> None:
        """Own ``partitions``. Their stores are restored first, all together; where a
        store knows the offset its state is at, ``tp.offset`` is set to resume there.

        Blocks for as long as the restore takes.
        """
        state = self.state
        stateful = [
            (tp.topic, tp.partition)
            for tp in partitions
            if state is not None and state.has_stores(tp.topic)
        ]
        if state is not None and stateful:
            self.restoring = True
            try:
                opened = state.open_partitions(stateful)
            finally:
                self.restoring = False
            for tp in partitions:
                if (tp.topic, tp.partition) in opened:
                    stores, seek = opened[(tp.topic, tp.partition)]
                    self._open(tp.topic, tp.partition, stores)
                    if seek is not None:
                        tp.offset = seek
        for tp in partitions:
            self.contexts.setdefault(
                (tp.topic, tp.partition), PartitionContext(tp.topic, tp.partition)
            )

    def release(self, partitions: list[TopicPartition], *, lost: bool) -> None:
        """Stop owning ``partitions``: close their stores, or drop them when ``lost``
        (another worker may have written their changelogs since)."""
        for tp in partitions:
            self.contexts.pop((tp.topic, tp.partition), None)
            for step in self.topology.stateful_steps(tp.topic):
                step.close_partition(tp.partition)
            if self.state is not None:
                if lost:
                    self.state.drop_partition(tp.topic, tp.partition)
                else:
                    self.state.close_partition(tp.topic, tp.partition)

    def discard_uncommitted(self) -> None:
        """Return every store to its last committed state and rebuild the steps' views
        of it (window indexes, stream time): after an aborted transaction."""
        if self.state is not None:
            self.state.discard()
        for (topic, _), part in self.contexts.items():
            if part.stores:
                for step in self.topology.stateful_steps(topic):
                    step.open_partition(part)

    def resume_offset(self, topic: str, partition: int) -> int:
        """Where to resume a partition without a committed offset: where its stores are."""
        part = self.contexts.get((topic, partition))
        stores = part.stores.values() if part is not None else ()
        return max((s.source_offset for s in stores), default=OFFSET_BEGINNING)

    def punctuate(self, now: float) -> None:
        """Let stateful steps act on time (idle windows close) in every owned partition."""
        for step in self.topology.stateful:
            for (topic, _), part in list(self.contexts.items()):
                if topic == step.source and part.stores:
                    step.punctuate(part, now)

    def close(self) -> None:
        """Release everything; the stores close (their data stays on disk)."""
        if self.state is not None:
            self.state.close()
            self.state = None
        self.contexts.clear()

    def _open(self, topic: str, partition: int, stores: dict[str, StorePartition]) -> None:
        part = PartitionContext(topic, partition, stores)
        self.contexts[(topic, partition)] = part
        for step in self.topology.stateful_steps(topic):
            step.open_partition(part)
