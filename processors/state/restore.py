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
from typing import cast

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
from millstream.processors.state.backends import Position
from millstream.processors.state.changelog import MARKER_KEY, decode_marker
from millstream.processors.state.store import StorePartition

log = logging.getLogger("millstream.restore")

#: Show a progress bar only for restores at least this long (records).
PROGRESS_THRESHOLD = 50_000


class Restorer:
    """Replays changelog partitions into store partitions with one assign-only consumer."""

    def __init__(self, consumer_factory: Callable[[], Consumer], batch_size: int = 20_000) -> None:
        self._factory = consumer_factory
        self._consumer: Consumer | None = None
        self._batch_size = batch_size
        self.restored_records = 0

    def restore(self, store: StorePartition) -> int:
        """Bring ``store`` up to the end of its changelog partition; returns records read."""
        consumer = self._consumer or self._factory()
        self._consumer = consumer
        tp = TopicPartition(store.changelog, store.partition)
        position = store.backend.position()
        start = position.changelog_offset if position else 0
        low, high = _watermarks(consumer, tp)
        start = max(start, low)
        if position is not None:
            _adopt(store, position)
        if start >= high:
            store.changelog_offset = max(store.changelog_offset, start)
            return 0
        began = time.monotonic()
        consumer.assign([TopicPartition(store.changelog, store.partition, start)])
        try:
            read = self._replay(consumer, store, start, high)
        finally:
            consumer.unassign()
        elapsed = max(time.monotonic() - began, 1e-6)
        self.restored_records += read
        log.info(
            "restored %s[%d]: %d changelog records in %.2fs (%.0f/s), from offset %d",
            store.name,
            store.partition,
            read,
            elapsed,
            read / elapsed,
            start,
        )
        return read

    def _replay(self, consumer: Consumer, store: StorePartition, start: int, high: int) -> int:
        pending: dict[bytes, bytes | None] = {}
        read, offset = 0, start
        tp = TopicPartition(store.changelog, store.partition)
        with _progress(store, high - start) as advance:
            while offset < high:
                messages = consumer.consume(self._batch_size, 0.2)
                if not messages:
                    offset = consumer.position([tp])[0].offset
                    continue
                for message in messages:
                    key = message.key()
                    if key is None:  # error events carry no key; changelog records always do
                        continue
                    if key == MARKER_KEY:
                        m = cast(ConsumedRecord, message)
                        source_offset, meta = decode_marker(m.value())
                        marked = Position(m.offset() + 1, source_offset, meta)
                        store.backend.apply_encoded(pending, marked)
                        _adopt(store, marked)
                        pending = {}
                    else:
                        pending[key] = message.value()
                last = cast(ConsumedRecord, messages[-1]).offset()
                offset = max(offset, last + 1 if last >= 0 else offset)
                read += len(messages)
                advance(len(messages))
        if pending:
            log.info(
                "%s[%d]: discarded %d changelog records of an unfinished checkpoint",
                store.name,
                store.partition,
                len(pending),
            )
        return read

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout: float = 60.0) -> tuple[int, int]:
    """Low and high watermark of ``tp``, retrying while a new topic's leaders settle."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except Exception as exc:
            error = from_exception(exc, f"reading the offsets of {tp.topic}[{tp.partition}]")
            if not error.retriable or time.monotonic() > deadline:
                raise error from exc
            time.sleep(0.2)


def _adopt(store: StorePartition, position: Position) -> None:
    store.changelog_offset = position.changelog_offset
    store.source_offset = position.source_offset
    store.meta = dict(position.meta)


class _progress:
    """A rich progress bar on stderr for long restores; a no-op for short ones."""

    def __init__(self, store: StorePartition, total: int) -> None:
        self._bar: Progress | None = None
        if total >= PROGRESS_THRESHOLD:
            self._bar = Progress(
                TextColumn(f"restoring {store.name}[{store.partition}]"),
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
