"""Session windows: records of a key at most ``gap`` apart form one session; sessions merge."""

from __future__ import annotations

import heapq
from typing import Any

from millstream.errors import ConfigurationError
from millstream.processors.rows import Row
from millstream.processors.state.store import StorePartition
from millstream.processors.windows.base import PartitionWindows, WindowStep
from millstream.processors.windows.definitions import Session


class SessionIndex:
    """Open sessions per key, and a heap of (close time, session) for closing."""

    def __init__(self) -> None:
        self.by_key: dict[Any, list[tuple[int, int]]] = {}
        self.heap: list[tuple[int, Any]] = []

    def add(self, key: Any, start: int, end: int, close: int) -> None:
        self.by_key.setdefault(key, []).append((start, end))
        heapq.heappush(self.heap, (close, (key, start, end)))

    def remove(self, key: Any, start: int, end: int) -> None:
        sessions = self.by_key.get(key)
        if sessions is not None:
            sessions.remove((start, end))
            if not sessions:
                del self.by_key[key]


class SessionWindowStep(WindowStep):
    """Aggregates into sessions ``[start, end]`` that merge when records bridge them."""

    def __init__(self, window: Session, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.aggregation.merge is None:
            raise ConfigurationError(
                "merge", "session windows merge aggregates: pass merge= to aggregate()"
            )
        self.window = window
        self.name = f"window(session:{self.store_name})"

    def build_index(self, store: StorePartition) -> SessionIndex:
        index = SessionIndex()
        horizon = self.window.gap_ms + self.window.grace_ms + 1
        for (key, start, end), _ in store.items():
            index.add(key, start, end, end + horizon)
        return index

    def update(
        self,
        rows: list[Row],
        store: StorePartition,
        windows: PartitionWindows,
        stream_time: int,
        out: list[Row],
    ) -> int:
        # The end is inclusive: a session is open while stream time <= end + gap + grace.
        gap, horizon = self.window.gap_ms, self.window.gap_ms + self.window.grace_ms + 1
        agg = self.aggregation
        merge = agg.merge
        assert merge is not None
        index: SessionIndex = windows.index
        current = self.emit_mode == "current"
        for row in rows:
            key, ts = row[0], row[2]
            if ts > stream_time:
                stream_time = ts
            joined = [
                (s, e)
                for s, e in index.by_key.get(key, ())
                if s - gap <= ts <= e + gap and e + horizon > stream_time
            ]
            start = min([ts, *(s for s, _ in joined)])
            end = max([ts, *(e for _, e in joined)])
            if end + horizon <= stream_time:
                self.late_record(row, stream_time)
                continue
            try:
                # Sessions merge in time order, then the record is added: an order-
                # sensitive aggregate (a list) reads as the records came in event time.
                acc = agg.initial()
                for i, (s, e) in enumerate(sorted(joined)):
                    found = store.get((key, s, e))
                    acc = found if i == 0 else merge(acc, found)
                acc = agg.add(acc, agg.extract(row[1]))
            except Exception as exc:
                self.fail(row, exc)
                continue
            for s, e in joined:
                store.delete((key, s, e))
                index.remove(key, s, e)
            store.set((key, start, end), acc)
            index.add(key, start, end, end + horizon)
            if current:
                out.append(self.result_row(key, start, end, acc, row[3]))
        return stream_time

    def close_due(
        self, store: StorePartition, windows: PartitionWindows, stream_time: int, out: list[Row]
    ) -> None:
        index: SessionIndex = windows.index
        final = self.emit_mode == "final"
        while index.heap and index.heap[0][0] <= stream_time:
            _, (key, start, end) = heapq.heappop(index.heap)
            if (start, end) not in index.by_key.get(key, ()):
                continue  # merged away since it was pushed
            acc = store.get((key, start, end))
            if final:
                out.append(self.result_row(key, start, end, acc, windows.origin))
            store.delete((key, start, end))
            index.remove(key, start, end)
