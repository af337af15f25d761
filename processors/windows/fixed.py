"""Tumbling and hopping windows: fixed-size, aligned to multiples of the advance."""

from __future__ import annotations

import heapq
from typing import Any

from millstream.processors.rows import Row
from millstream.processors.state.store import StorePartition
from millstream.processors.windows.base import PartitionWindows, WindowStep
from millstream.processors.windows.definitions import Hopping

_MISSING: Any = object()


class FixedWindowStep(WindowStep):
    """Aggregates into ``[start, start + size)`` windows; the index is a heap of window ends."""

    def __init__(self, window: Hopping, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window = window
        self.name = f"window({window.kind}:{self.store_name})"

    def build_index(self, store: StorePartition) -> list[tuple[int, Any]]:
        heap = [(key[2], key) for key, _ in store.items()]
        heapq.heapify(heap)
        return heap

    def update(
        self,
        rows: list[Row],
        store: StorePartition,
        windows: PartitionWindows,
        stream_time: int,
        out: list[Row],
    ) -> int:
        size, advance, grace = self.window.size_ms, self.window.advance_ms, self.window.grace_ms
        agg = self.aggregation
        extract, add, initial = agg.extract, agg.add, agg.initial
        current = self.emit_mode == "current"
        heap, put, get = windows.index, store.set, store.get
        for row in rows:
            ts = row[2]
            if ts > stream_time:
                stream_time = ts
            last_start = ts - ts % advance
            if last_start + size + grace <= stream_time:
                self.late_record(row, stream_time)
                continue
            try:
                x = extract(row[1])
                start = last_start
                while start > ts - size:
                    end = start + size
                    if end + grace > stream_time:
                        wkey = (row[0], start, end)
                        acc = get(wkey, _MISSING)
                        if acc is _MISSING:
                            acc = initial()
                            heapq.heappush(heap, (end, wkey))
                        acc = add(acc, x)
                        put(wkey, acc)
                        if current:
                            out.append(self.result_row(row[0], start, end, acc, row[3]))
                    start -= advance
            except Exception as exc:
                self.fail(row, exc)
        return stream_time

    def close_due(
        self, store: StorePartition, windows: PartitionWindows, stream_time: int, out: list[Row]
    ) -> None:
        heap, grace = windows.index, self.window.grace_ms
        final = self.emit_mode == "final"
        while heap and heap[0][0] + grace <= stream_time:
            end, wkey = heapq.heappop(heap)
            acc = store.get(wkey, _MISSING)
            if acc is _MISSING:
                continue
            if final:
                out.append(self.result_row(wkey[0], wkey[1], end, acc, windows.origin))
            store.delete(wkey)
