"""Per-partition context handed to every pipeline step with each batch."""

from __future__ import annotations

from millstream.processors.state.store import StorePartition


class PartitionContext:
    """The input partition a batch comes from, and the stores that partition owns."""

    __slots__ = ("next_offset", "partition", "stores", "topic")

    def __init__(
        self, topic: str, partition: int, stores: dict[str, StorePartition] | None = None
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.stores: dict[str, StorePartition] = stores or {}
        #: Offset after the last record of the current batch.
        self.next_offset = 0

    def store(self, name: str) -> StorePartition:
        try:
            return self.stores[name]
        except KeyError:
            raise KeyError(
                f"store {name!r} is not attached to {self.topic}[{self.partition}]"
            ) from None

    def __repr__(self) -> str:
        return f"PartitionContext({self.topic}[{self.partition}])"
