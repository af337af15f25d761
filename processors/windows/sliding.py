"""Sliding windows, Kafka Streams style: windows ``[start, start + size]`` defined by records.

The store keeps, per key, the records that may still matter as
``[event_time, stream_time_at_arrival, extracted_value]``. A window's result is
folded from them when it closes, from the records that arrived before it closed
(docs/windows.md states the rule exactly).
"""

from __future__ import annotations

import heapq
from typing import Any

from millstream.processors.rows import Row
from millstream.processors.state.store import StorePartition
from millstream.processors.windows.base import PartitionWindows, WindowStep
from millstream.processors.windows.definitions import Sliding


class SlidingWindowStep(WindowStep):
    """Aggregates over sliding windows; the index is a heap of candidate windows by close time."""

    def __init__(self, window: Sliding, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window = window
        self.name = f"window(sliding:{self.store_name})"

    def build_index(self, store: StorePartition) -> list[tuple[int, Any, int, int]]:
        heap: list[tuple[int, Any, int, int]] = []
        stream_time = store.stream_time
        for key, records in store.items():
            for ts, _, _ in records:
                self._push_candidates(heap, key, ts, stream_time)
        heapq.heapify(heap)
        return heap

    def _push_candidates(self, heap: list[Any], key: Any, ts: int, stream_time: int) -> None:
        size, grace = self.window.size_ms, self.window.grace_ms
        for start, end in ((ts - size, ts), (ts + 1, ts + 1 + size)):
            # The end is inclusive: a window is open while stream time <= end + grace.
            if end + grace >= stream_time:
                heapq.heappush(heap, (end + grace + 1, key, start, end))

    def update(
        self,
        rows: list[Row],
        store: StorePartition,
        windows: PartitionWindows,
        stream_time: int,
        out: list[Row],
    ) -> int:
        size, grace = self.window.size_ms, self.window.grace_ms
        extract = self.aggregation.extract
        current = self.emit_mode == "current"
        for row in rows:
            key, ts = row[0], row[2]
            if ts > stream_time:
                stream_time = ts
            if ts + size + grace < stream_time:
                self.late_record(row, stream_time)
                continue
            try:
                entry = [ts, stream_time, extract(row[1])]
            except Exception as exc:
                self.fail(row, exc)
                continue
            records = [*store.get(key, ()), entry]
            store.set(key, records)
            self._push_candidates(windows.index, key, ts, stream_time)
            if current:
                self._emit_updated(key, records, ts, stream_time, row, out)
        return stream_time

    def _emit_updated(
        self,
        key: Any,
        records: list[list[Any]],
        ts: int,
        stream_time: int,
        row: Row,
        out: list[Row],
    ) -> None:
        """For ``.current()``: the value of every open window the record at ``ts`` changed,
        which is every window containing it, and its right window if that now exists."""
        size, grace, fold = self.window.size_ms, self.window.grace_ms, self.aggregation.fold
        updated: set[tuple[int, int]] = set()
        for t, _, _ in records:
            if t - size <= ts <= t:
                updated.add((t - size, t))
            if t + 1 <= ts <= t + 1 + size:
                updated.add((t + 1, t + 1 + size))
            if ts < t <= ts + 1 + size:
                updated.add((ts + 1, ts + 1 + size))
        for start, end in sorted(updated):
            if end + grace >= stream_time:
                acc = fold([r[2] for r in records if start <= r[0] <= end])
                out.append(self.result_row(key, start, end, acc, row[3]))

    def close_due(
        self, store: StorePartition, windows: PartitionWindows, stream_time: int, out: list[Row]
    ) -> None:
        heap = windows.index
        final = self.emit_mode == "final"
        done: set[tuple[Any, int, int]] = set()
        keys: set[Any] = set()
        while heap and heap[0][0] <= stream_time:
            close, key, start, end = heapq.heappop(heap)
            keys.add(key)
            if (key, start, end) in done:
                continue
            done.add((key, start, end))
            if final:
                acc = self._final_value(store.get(key, ()), start, end, close)
                if acc is not None:
                    out.append(self.result_row(key, start, end, acc[0], windows.origin))
        self._purge(store, keys, stream_time)

    def _final_value(
        self, records: list[list[Any]], start: int, end: int, close: int
    ) -> tuple[Any] | None:
        arrived = [r for r in records if r[1] < close]
        defined = any(r[0] == end or r[0] + 1 == start for r in arrived)
        content = [r[2] for r in arrived if start <= r[0] <= end]
        if not defined or not content:
            return None
        return (self.aggregation.fold(content),)

    def _purge(self, store: StorePartition, keys: set[Any], stream_time: int) -> None:
        """Forget records that no open window can contain or define any more."""
        horizon = self.window.size_ms + 2 + self.window.grace_ms
        for key in keys:
            records = store.get(key, ())
            kept = [r for r in records if r[0] + horizon > stream_time]
            if not kept:
                store.delete(key)
            elif len(kept) != len(records):
                store.set(key, kept)
