"""A sink whose destination goes away: the worker pauses, goes back to its last
commit and resumes by itself, and every record reaches the destination once.

The sink here is the simplest honest one: it keeps a batch in memory and appends it
to a list (the "destination") at flush, unless the destination is down, in which
case write and flush raise SinkBackpressure.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

import pytest
from support import Names, ThreadedWorker, produce_json, wait_for

from millstream import App
from millstream.config import Settings
from millstream.errors import SinkBackpressure
from millstream.sinks import Sink, SinkRecord

RECORDS = 20_000


class Destination(Sink):
    """Writes whole batches at flush; refuses everything while ``down`` is set."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.rows: list[tuple[int, int]] = []
        self.refusals = 0
        self._batch: list[SinkRecord] = []
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.down.is_set():
            self.refusals += 1
            raise SinkBackpressure("the destination is down", retry_after=0.2)

    def write(self, records: Sequence[SinkRecord]) -> None:
        self._check()
        self._batch.extend(records)

    def flush(self) -> None:
        self._check()
        with self._lock:
            self.rows += [(r.partition, r.offset) for r in self._batch]
        self._batch = []

    def discard(self) -> None:
        self._batch = []

    def written(self) -> int:
        with self._lock:
            return len(self.rows)


@pytest.fixture
def input_partitions() -> int:
    return 3


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_worker_rides_out_a_destination_outage_without_loss_or_duplicates(
    names: Names, bootstrap_servers: str, settings: Settings, guarantee: str
) -> None:
    destination = Destination()
    app = App(
        names.app,
        bootstrap_servers=bootstrap_servers,
        commit_interval=0.2,
        processing_guarantee=guarantee,  # type: ignore[arg-type]
    )
    app.stream(names.source).sink(destination)
    half = RECORDS // 2
    produce_json(settings, names.source, ((f"k{i % 50}", {"n": i}) for i in range(half)))
    worker = ThreadedWorker(app)
    try:
        wait_for(
            lambda: worker.running() and destination.written() > half // 4,
            60,
            "the first records to be written",
        )
        destination.down.set()
        produce_json(
            settings, names.source, ((f"k{i % 50}", {"n": i}) for i in range(half, RECORDS))
        )
        wait_for(
            lambda: worker.running() and destination.refusals >= 5,
            60,
            "the worker to meet the outage several times",
        )
        destination.down.clear()
        wait_for(
            lambda: worker.running() and destination.written() >= RECORDS,
            120,
            "every record to be written after the outage",
            observed=lambda: f"{destination.written()} written",
        )
        stats = worker.stop()
    finally:
        if worker.thread.is_alive():
            worker.worker.stop()
    counts = Counter(destination.rows)
    assert len(counts) == RECORDS
    assert max(counts.values()) == 1, counts.most_common(3)
    assert stats.sink_pauses >= 1
