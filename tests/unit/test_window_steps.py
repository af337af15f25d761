"""Window steps (processors/windows/), run through the test driver.

Random inputs are checked against the independent oracle (tests/oracle.py); small
hand-computed inputs (tests/window_support.py) pin down emission, grace, overlap,
session merging, idle partitions and the stores a window keeps on the driver. The
aggregations themselves are in test_window_aggregations.py.
"""

from __future__ import annotations

import random
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import oracle
import pytest
from window_support import MS, START, n, results, send, windowed

from millstream import App, windows
from millstream.processors.handlers import ProcessorContext, Record
from millstream.testing import TestDriver
from millstream.topics import Topic

SECOND = timedelta(seconds=1)

# -- windows against the oracle --------------------------------------------------------

PARTITIONS = 3
GRACE = 2_000 * MS


def amount(value: Any) -> int:
    return int(value["amount"])


def windowed_app() -> tuple[App, dict[str, Topic]]:
    app = App("oracle")
    source = app.topic("in", partitions=PARTITIONS)
    grouped = app.stream(source, timestamp=lambda v: v["ts"]).group_by_key()
    aggregations = {
        "tumbling": grouped.window(windows.Tumbling(10 * SECOND, grace=GRACE), name="t").count(),
        "hopping": grouped.window(
            windows.Hopping(10 * SECOND, 5 * SECOND, grace=GRACE), name="h"
        ).sum(amount),
        "sliding": grouped.window(windows.Sliding(5 * SECOND, grace=GRACE), name="s").count(),
        "session": grouped.window(windows.Session(2 * SECOND, grace=GRACE), name="x").sum(amount),
    }
    outputs = {kind: app.topic(f"out-{kind}") for kind in aggregations}
    for kind, aggregated in aggregations.items():
        aggregated.to(outputs[kind])
    return app, outputs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_windows_equal_the_oracle(seed: int) -> None:
    rng = random.Random(seed)
    app, outputs = windowed_app()
    partitions: list[list[oracle.Record]] = [[] for _ in range(PARTITIONS)]
    with TestDriver(app) as driver:
        for i in range(3000):
            key = f"card-{rng.randrange(40)}"
            late = rng.random() < 0.02
            ts = START + i * 20 - (rng.randint(5_000, 20_000) if late else rng.randint(0, 3_000))
            value = {"ts": ts, "amount": rng.randint(1, 500)}
            driver.send("in", value, key=key)
            partitions[zlib.crc32(key.encode()) % PARTITIONS].append((key, ts, value))
        emitted = {
            kind: {
                (r.key, r.value["start"], r.value["end"]): r.value["value"] for r in driver.read(t)
            }
            for kind, t in outputs.items()
        }
    grace = GRACE // MS
    expected = {
        "tumbling": oracle.tumbling(partitions, 10_000, grace, oracle.count()),
        "hopping": oracle.hopping(partitions, 10_000, 5_000, grace, oracle.total(amount)),
        "sliding": oracle.sliding(partitions, 5_000, grace, oracle.count()),
        "session": oracle.session(partitions, 2_000, grace, oracle.total(amount)),
    }
    for kind, outcome in expected.items():
        assert outcome.results, f"{kind}: the input closes no window; the test proves nothing"
        assert emitted[kind] == outcome.results, kind
    assert driver.stats.late_records == sum(o.late for o in expected.values())


# -- emission, grace, overlap, merging -----------------------------------------------------


def test_final_emits_each_window_once_when_stream_time_reaches_its_end() -> None:
    with TestDriver(windowed(windows.Tumbling(10_000 * MS))) as driver:
        send(driver, ("k", 1_000, 0), ("j", 2_000, 0), ("k", 9_999, 0))
        assert results(driver) == []
        send(driver, ("k", 10_000, 0))
        assert sorted(results(driver)) == [("j", 0, 10_000, 1), ("k", 0, 10_000, 2)]
        assert driver.store("w") == {("k", START + 10_000, START + 20_000): 1}


def test_current_emits_after_every_update_and_nothing_when_the_window_closes() -> None:
    with TestDriver(windowed(windows.Tumbling(10_000 * MS), current=True)) as driver:
        send(driver, ("k", 1_000, 0), ("k", 2_000, 0), ("k", 10_000, 0))
        assert results(driver) == [
            ("k", 0, 10_000, 1),
            ("k", 0, 10_000, 2),
            ("k", 10_000, 20_000, 1),
        ]
        assert list(driver.store("w")) == [("k", START + 10_000, START + 20_000)]


@pytest.mark.parametrize("late", ["drop", "topic"])
def test_a_record_within_grace_counts_and_one_past_it_is_late(late: str) -> None:
    app = windowed(windows.Tumbling(10_000 * MS, grace=2_000 * MS), late=late)
    with TestDriver(app) as driver:
        send(driver, ("k", 1_000, 0), ("j", 11_999, 0), ("k", 9_000, 0))
        assert results(driver) == [], "[0, 10 s) stays open until stream time 12 s"
        send(driver, ("j", 12_000, 0))
        assert results(driver) == [("k", 0, 10_000, 2)]
        send(driver, ("k", 9_500, 0))
        assert driver.stats.late_records == 1
        assert len(driver.read("win-late")) == (1 if late == "topic" else 0)
        send(driver, ("j", 100_000, 0))
        assert results(driver) == [("j", 10_000, 20_000, 2)], "the late record is nowhere"


def test_hopping_windows_overlap() -> None:
    app = windowed(windows.Hopping(10_000 * MS, 5_000 * MS), lambda w: w.sum(n))
    with TestDriver(app) as driver:
        send(driver, ("k", 2_000, 1), ("k", 7_000, 10), ("k", 12_000, 100), ("z", 50_000, 0))
        assert results(driver) == [
            ("k", -5_000, 5_000, 1),
            ("k", 0, 10_000, 11),
            ("k", 5_000, 15_000, 110),
            ("k", 10_000, 20_000, 100),
        ]


def test_sliding_windows_are_the_left_and_right_windows_of_records() -> None:
    with TestDriver(windowed(windows.Sliding(5_000 * MS))) as driver:
        send(driver, ("k", 1_000, 0), ("k", 3_000, 0), ("z", 100_000, 0))
        assert sorted(results(driver)) == [
            ("k", -4_000, 1_000, 1),
            ("k", -2_000, 3_000, 2),
            ("k", 1_001, 6_001, 1),
        ]


def test_a_record_that_bridges_two_sessions_merges_them() -> None:
    app = windowed(windows.Session(2_000 * MS, grace=5_000 * MS), lambda w: w.sum(n), current=True)
    with TestDriver(app) as driver:
        send(driver, ("k", 0, 1), ("k", 4_000, 10), ("k", 2_000, 100))
        assert results(driver) == [("k", 0, 0, 1), ("k", 4_000, 4_000, 10), ("k", 0, 4_000, 111)]
        assert driver.store("w") == {("k", START, START + 4_000): 111}


def test_a_session_closes_at_end_plus_gap_plus_grace_plus_one() -> None:
    app = windowed(windows.Session(2_000 * MS, grace=5_000 * MS), lambda w: w.sum(n))
    with TestDriver(app) as driver:
        send(driver, ("k", 0, 1), ("k", 4_000, 10), ("k", 2_000, 100), ("z", 11_000, 0))
        assert results(driver) == []
        send(driver, ("z", 11_001, 0))
        assert results(driver) == [("k", 0, 4_000, 111)]


def test_sliding_current_emits_every_window_a_record_updates() -> None:
    with TestDriver(windowed(windows.Sliding(5_000 * MS), current=True)) as driver:
        send(driver, ("k", 1_000, 0), ("k", 3_000, 0))
        results(driver)
        send(driver, ("k", 2_000, 0))
        # Its own left window [-3 s, 2 s] closed when stream time passed 2 s (no grace).
        assert sorted(results(driver)) == [
            ("k", -2_000, 3_000, 3),  # the left window of 3 s: all three
            ("k", 1_001, 6_001, 2),  # the right window of 1 s: 2 s and 3 s
            ("k", 2_001, 7_001, 1),  # its own right window, defined now: 3 s
        ]


def test_a_compound_group_key() -> None:
    app = App("win")
    payments = app.topic("payments")
    (
        app.stream(payments, timestamp=lambda v: v["ts"] + START)
        .group_by(lambda v: (v["merchant"], v["currency"]), name="by-pair")
        .window(windows.Tumbling(10_000 * MS), name="w")
        .count()
        .to(app.topic("results", key_serde="json"))
    )
    with TestDriver(app) as driver:
        for ts in (1_000, 2_000, 10_000):
            driver.send(payments, {"merchant": "m-1", "currency": "EUR", "ts": ts}, key="c")
        assert driver.stats.dead_letters == 0
        assert [(r.key, r.value["value"]) for r in driver.read("results")] == [(["m-1", "EUR"], 2)]


# -- stores and time -------------------------------------------------------------------------


def test_rocksdb_declared_stores_run_in_memory_on_the_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = windowed(windows.Tumbling(10_000 * MS), backend="rocksdb")
    totals = app.table("totals", backend="rocksdb")

    @app.processor("events", tables=[totals])
    def track(record: Record, ctx: ProcessorContext) -> None:
        table = ctx.table("totals")
        table[record.key] = table.get(record.key, 0) + record.value["n"]

    with TestDriver(app) as driver:
        send(driver, ("k", 1_000, 2), ("k", 2_000, 3), ("k", 10_000, 4))
        assert results(driver) == [("k", 0, 10_000, 2)]
        assert driver.store("totals") == {"k": 9}
    assert list(tmp_path.iterdir()) == [], "no state directory: the stores were memory stores"


def test_an_idle_partition_closes_its_windows_after_idle_timeout() -> None:
    app = windowed(windows.Tumbling(10_000 * MS), idle_timeout=timedelta(seconds=5))
    with TestDriver(app) as driver:
        send(driver, ("k", 2_000, 0))
        driver.advance(4)
        driver.advance(1)  # idle 5 s: stream time 7 s, the window ends at 10 s
        assert results(driver) == []
        driver.advance(3)  # idle 8 s: stream time 10 s
        assert results(driver) == [("k", 0, 10_000, 1)]
        send(driver, ("k", 15_000, 0))  # a record: idle again from now
        driver.advance(4)
        assert results(driver) == []
        driver.advance(2)  # idle 6 s: stream time 21 s
        assert results(driver) == [("k", 10_000, 20_000, 1)]


def test_without_idle_timeout_only_records_move_stream_time() -> None:
    with TestDriver(windowed(windows.Tumbling(10_000 * MS))) as driver:
        send(driver, ("k", 2_000, 0))
        driver.advance(3_600)
        assert results(driver) == []
