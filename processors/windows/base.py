"""What every windowed aggregation step shares: stream time, late records, emission,
closing due windows, and punctuation of idle partitions.

Subclasses implement :meth:`WindowStep.update` (add a batch of rows) and
:meth:`WindowStep.close_due` (emit and delete windows that closed), and an
in-memory index of each partition's windows, rebuilt from the store on assignment
and kept by the partition (``AssignedPartition.views``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Literal

from millstream.processors.assigned import AssignedPartition
from millstream.processors.operations import StatefulStep
from millstream.processors.rows import OriginMessage, Row
from millstream.processors.state.manager import StoreKind, StoreSpec
from millstream.processors.state.store import NO_TIME, StorePartition
from millstream.processors.windows.aggregations import Aggregation

Emit = Literal["final", "current"]
LatePolicy = Literal["drop", "topic"]


class PartitionWindows:
    """In-memory companions of one store partition: index and idle bookkeeping."""

    def __init__(self, topic: str, partition: int, now: float) -> None:
        self.index: Any = None
        self.last_wall = now
        self.last_event_time = NO_TIME
        self.origin: Any = OriginMessage(topic, partition, 0)


class WindowStep(StatefulStep):
    """A windowed aggregation keyed by the record key, over one source topic's partitions."""

    def __init__(
        self,
        *,
        store_name: str,
        source: str,
        aggregation: Aggregation,
        store_kind: StoreKind = "memory",
        late: LatePolicy = "drop",
        idle_timeout_ms: int | None = None,
    ) -> None:
        super().__init__()
        self.store_name = store_name
        self.source = source
        self.aggregation = aggregation
        self.store_kind: StoreKind = store_kind
        self.late_policy: LatePolicy = late
        self.idle_timeout_ms = idle_timeout_ms
        self.emit_mode: Emit = "final"

    # -- declared to the topology ---------------------------------------------------

    def store_specs(self) -> list[StoreSpec]:
        return [StoreSpec(self.store_name, self.source, self.store_kind, tuple_keys=True)]

    def open_partition(self, part: AssignedPartition) -> None:
        """Rebuild the index of a freshly restored (or rewound) store partition."""
        assert self.collector is not None, "step used before bind()"
        windows = PartitionWindows(part.topic, part.partition, self.collector.clock())
        windows.index = self.build_index(part.store(self.store_name))
        part.views[self.store_name] = windows

    # -- processing -----------------------------------------------------------------

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        store = part.store(self.store_name)
        rows = _unseen(rows, store)
        if not rows:
            return
        windows: PartitionWindows = part.views[self.store_name]
        out: list[Row] = []
        stream_time = self.update(rows, store, windows, store.stream_time, out)
        windows.last_wall = self.collector.clock()  # type: ignore[union-attr]
        windows.last_event_time = stream_time
        windows.origin = rows[-1][3]
        store.set_stream_time(stream_time)
        self.close_due(store, windows, stream_time, out)
        self.emit(out, part)

    def punctuate(self, part: AssignedPartition, now: float) -> None:
        """Advance the stream time of an idle partition by the wall-clock time it has idled."""
        if self.idle_timeout_ms is None:
            return
        windows: PartitionWindows | None = part.views.get(self.store_name)
        if windows is None or windows.last_event_time == NO_TIME:
            return
        idle_ms = int((now - windows.last_wall) * 1000)
        if idle_ms < self.idle_timeout_ms:
            return
        store = part.store(self.store_name)
        advanced = windows.last_event_time + idle_ms
        if advanced <= store.stream_time:
            return
        store.set_stream_time(advanced)
        out: list[Row] = []
        self.close_due(store, windows, advanced, out)
        self.emit(out, part)

    def late_record(self, row: Row, stream_time: int) -> None:
        assert self.collector is not None
        reason = f"late: event time {row[2]} is past its windows' close (stream time {stream_time})"
        self.collector.late(row[3], reason, self.name, self.late_policy == "topic")

    def result_row(self, key: Any, start: int, end: int, acc: Any, origin: Any) -> Row:
        value = {"start": start, "end": end, "value": self.aggregation.result(acc)}
        return (key, value, end, origin)

    # -- per kind -------------------------------------------------------------------

    @abstractmethod
    def build_index(self, store: StorePartition) -> Any:
        """The in-memory index of a restored store partition."""

    @abstractmethod
    def update(
        self,
        rows: list[Row],
        store: StorePartition,
        windows: PartitionWindows,
        stream_time: int,
        out: list[Row],
    ) -> int:
        """Add ``rows`` to their windows; returns the new stream time."""

    @abstractmethod
    def close_due(
        self, store: StorePartition, windows: PartitionWindows, stream_time: int, out: list[Row]
    ) -> None:
        """Emit (for ``final``) and delete every window closed at ``stream_time``."""


def _unseen(rows: list[Row], store: StorePartition) -> list[Row]:
    """Rows the store has not seen yet.

    After a restore the input may resume below the offset this store's state
    already reflects (another store of the partition was behind); those rows
    must not be applied twice.
    """
    skip = store.replayed_below
    if skip <= 0 or rows[-1][3].offset() < 0:
        return rows
    if rows[0][3].offset() >= skip:
        store.caught_up()
        return rows
    return [row for row in rows if row[3].offset() >= skip]
