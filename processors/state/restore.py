"""Restoring a store partition from its changelog.

The backend's recorded position says where to start (0 for a memory store or a
fresh disk). Records are read in large batches and applied in one write per
position marker; a tail of records after the last marker belongs to a
checkpoint that never completed and is discarded, because the input records
that produced it will be processed again.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from millstream.kafka import ConsumedRecord, Consumer, TopicPartition, from_exception
from millstream.processors.batches import partition_runs
from millstream.processors.state.backends import Position
from millstream.processors.state.changelog import MARKER_KEY, decode_marker
from millstream.processors.state.restore_report import RestoreReport
from millstream.processors.state.store import StorePartition

log = logging.getLogger("millstream.restore")

#: Show a progress bar only for restores at least this long (records).
PROGRESS_THRESHOLD = 50_000


class Restorer:
    """Replays changelog partitions into store partitions with one assign-only consumer.

    All the partitions of one assignment restore together: the consumer fetches from
    every changelog partition at once, and the fixed cost of a restore (assigning,
    the first fetch, noticing the end) is paid once rather than per partition.
    """

    def __init__(self, consumer_factory: Callable[[], Consumer], batch_size: int = 20_000) -> None:
        self._factory = consumer_factory
        self._consumer: Consumer | None = None
        self._batch_size = batch_size
        self.restored_records = 0
        #: The latest restore of each store partition, by (store, partition): read by
        #: the metrics server while the restore runs.
        self.progress: dict[tuple[str, int], ReplayPosition] = {}

    def restore(self, stores: list[StorePartition]) -> int:
        """Bring every store up to the end of its changelog partition; returns records read."""
        replays = [r for r in (self._plan(store) for store in stores) if r is not None]
        if not replays:
            return 0
        began = time.monotonic()
        for r in replays:
            self.progress[(r.store.name, r.store.partition)] = r.progress
        consumer = self._client()
        consumer.assign(
            [TopicPartition(r.store.changelog, r.store.partition, r.start) for r in replays]
        )
        try:
            read = self._replay(consumer, replays)
        finally:
            consumer.unassign()
        elapsed = max(time.monotonic() - began, 1e-6)
        self.restored_records += read
        for r in replays:
            r.finish()
            r.progress.position = r.high
        log.info(
            "restored %d changelog records of %d store partitions in %.2fs (%.0f/s)",
            read,
            len(replays),
            elapsed,
            read / elapsed,
        )
        return read

    def _client(self) -> Consumer:
        if self._consumer is None:
            self._consumer = self._factory()
        return self._consumer

    def _plan(self, store: StorePartition) -> _Replay | None:
        """Where ``store`` starts replaying, or None when it is up to date."""
        tp = TopicPartition(store.changelog, store.partition)
        position = store.backend.position()
        start = position.changelog_offset if position else 0
        low, high = self._watermarks(tp)
        start = max(start, low)
        if position is not None:
            store.adopt(position)
        if start >= high:
            store.changelog_starts_at(start)
            return None
        return _Replay(store, start, high)

    def _replay(self, consumer: Consumer, replays: list[_Replay]) -> int:
        by_partition = {(r.store.changelog, r.store.partition): r for r in replays}
        remaining = dict(by_partition)
        read = 0
        total = sum(r.high - r.start for r in replays)
        report = RestoreReport(consumer)
        with _progress(replays, total) as advance:
            while remaining:
                report.progress((r.reported() for r in replays), final=False)
                messages = consumer.consume(self._batch_size, 0.2)
                if not messages:
                    self._check_positions(consumer, remaining)
                    continue
                for topic, partition, run in partition_runs(messages):
                    replay = by_partition.get((topic, partition))
                    if replay is not None and replay.add(run):
                        remaining.pop((topic, partition), None)
                read += len(messages)
                advance(len(messages))
        report.progress((r.reported(done=True) for r in replays), final=True)
        return read

    @staticmethod
    def _check_positions(consumer: Consumer, remaining: dict[tuple[str, int], _Replay]) -> None:
        """Finish partitions whose position reached the end (their last records were
        transaction markers or compacted away, so no record says so)."""
        tps = [TopicPartition(t, p) for t, p in remaining]
        for tp in consumer.position(tps):
            if tp.offset >= remaining[(tp.topic, tp.partition)].high:
                del remaining[(tp.topic, tp.partition)]

    def _watermarks(self, tp: TopicPartition, timeout: float = 60.0) -> tuple[int, int]:
        """Low and high watermark of ``tp``, asking again while leaders move.

        Every retry asks with a new consumer: one that knew a dead broker as the
        partition's leader can go on asking it (or answer "unknown partition") long
        after another broker took over, while a new one looks the leader up afresh.
        """
        deadline = time.monotonic() + timeout
        pause = 0.2
        while True:
            try:
                low, high = self._client().get_watermark_offsets(tp, timeout=5)
                return int(low), int(high)
            except Exception as exc:
                error = from_exception(exc, f"reading the offsets of {tp.topic}[{tp.partition}]")
                if not error.retriable or time.monotonic() > deadline:
                    raise error from exc
                log.info("%s; asking again with a new consumer in %.1fs", error, pause)
                self.close()
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


@dataclass
class ReplayPosition:
    """How far a store partition's restore got: changelog offsets from ``start`` to
    ``position`` are replayed, up to ``high`` (``position == high`` once done)."""

    start: int
    position: int
    high: int

    def counts(self) -> tuple[int, int]:
        """Offsets replayed and offsets to replay. Offsets rather than records: transaction
        markers and compacted-away records count too, so the two are equal once done."""
        return self.position - self.start, self.high - self.start


class _Replay:
    """One store partition being restored: changes since its last marker, and progress."""

    def __init__(self, store: StorePartition, start: int, high: int) -> None:
        self.store, self.start, self.high = store, start, high
        self.pending: dict[bytes, bytes | None] = {}
        self.read = 0
        self.progress = ReplayPosition(start, start, high)

    def reported(self, *, done: bool = False) -> tuple[str, int, int, int, int]:
        """(changelog, partition, start, position, target) for the restore report."""
        position = self.high if done else self.progress.position
        return (self.store.changelog, self.store.partition, self.start, position, self.high)

    def add(self, run: list[ConsumedRecord]) -> bool:
        """Apply a run of this partition's records; True once the partition is done."""
        pending, store = self.pending, self.store
        for message in run:
            key = message.key()
            if key == MARKER_KEY:
                source_offset, meta = decode_marker(message.value())
                marked = Position(message.offset() + 1, source_offset, meta)
                store.backend.apply_encoded(pending, marked)
                store.adopt(marked)
                pending = self.pending = {}
            elif key is not None:
                pending[key] = message.value()
        self.read += len(run)
        position = self.progress.position = run[-1].offset() + 1
        return position >= self.high

    def finish(self) -> None:
        store = self.store
        if self.pending:
            log.info(
                "%s[%d]: discarded %d changelog records of an unfinished checkpoint",
                store.name,
                store.partition,
                len(self.pending),
            )
        log.info(
            "restored %s[%d]: %d changelog records, from offset %d",
            store.name,
            store.partition,
            self.read,
            self.start,
            extra={"store": store.name, "partition": store.partition},
        )


class _progress:
    """A rich progress bar on stderr for long restores; a no-op for short ones, and
    where stderr is no terminal (a log file, a container's log: there the bar would
    only leave a blank line among the log lines, JSON ones included)."""

    def __init__(self, replays: list[_Replay], total: int) -> None:
        self._bar: Progress | None = None
        if total >= PROGRESS_THRESHOLD and sys.stderr.isatty():
            names = sorted({r.store.name for r in replays})
            self._bar = Progress(
                TextColumn(f"restoring {', '.join(names)} ({len(replays)} partitions)"),
                BarColumn(),
                MofNCompleteColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=True,
            )
            self._task = self._bar.add_task("restore", total=total)

    def __enter__(self) -> Callable[[int], None]:
        bar = self._bar
        if bar is None:
            return lambda _n: None
        bar.start()
        return lambda n: bar.advance(self._task, n)

    def __exit__(self, *_exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
