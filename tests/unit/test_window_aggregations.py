"""The aggregations of windowed streams (processors/windows/aggregations.py), on small
hand-computed inputs run through the test driver, in fixed windows and in sessions
that merge."""

from __future__ import annotations

from typing import Any

import pytest
from window_support import MS, Aggregate, n, results, send, windowed

from millstream import windows
from millstream.processors.grouping import WindowedStream
from millstream.testing import TestDriver

AGGREGATIONS: dict[str, tuple[Aggregate, Any]] = {
    "count": (WindowedStream.count, 5),
    "sum": (lambda w: w.sum(n), 14),
    "min": (lambda w: w.min(n), 1),
    "max": (lambda w: w.max(n), 5),
    "mean": (lambda w: w.mean(n), 2.8),
    "reduce": (lambda w: w.reduce(lambda a, b: {"n": max(a["n"], b["n"])}), {"n": 5}),
    "aggregate": (lambda w: w.aggregate(0, lambda acc, v: acc + v["n"] ** 2, int.__add__), 52),
}


@pytest.mark.parametrize("kind", ["tumbling", "merged-sessions"])
@pytest.mark.parametrize("name", AGGREGATIONS)
def test_aggregations_of_3_1_4_1_5(name: str, kind: str) -> None:
    aggregate, expected = AGGREGATIONS[name]
    if kind == "tumbling":
        app = windowed(windows.Tumbling(10_000 * MS), aggregate)
        events = [("k", 0, 3), ("k", 2_000, 1), ("k", 4_000, 4), ("k", 6_000, 1), ("k", 8_000, 5)]
    else:  # three sessions (0, 4 s, 8 s), bridged by the records at 2 s and 6 s
        app = windowed(windows.Session(2_000 * MS, grace=10_000 * MS), aggregate)
        events = [("k", 0, 3), ("k", 4_000, 4), ("k", 8_000, 5), ("k", 2_000, 1), ("k", 6_000, 1)]
    with TestDriver(app) as driver:
        send(driver, *events, ("z", 30_000, 0))
        assert results(driver) == [("k", 0, 10_000 if kind == "tumbling" else 8_000, expected)]


def test_reduce_folds_in_arrival_order() -> None:
    app = windowed(
        windows.Tumbling(10_000 * MS), lambda w: w.reduce(lambda a, b: {"n": a["n"] * 10 + b["n"]})
    )
    with TestDriver(app) as driver:
        send(driver, ("k", 5_000, 3), ("k", 1_000, 1), ("k", 9_000, 4), ("z", 10_000, 0))
        assert results(driver) == [("k", 0, 10_000, {"n": 314})]


def test_an_initial_aggregate_is_copied_for_each_window() -> None:
    def collect(acc: list[int], value: Any) -> list[int]:
        acc.append(value["n"])
        return acc

    app = windowed(windows.Tumbling(10_000 * MS), lambda w: w.aggregate([], collect))
    with TestDriver(app) as driver:
        send(driver, ("a", 0, 1), ("b", 1_000, 2), ("a", 2_000, 3), ("a", 10_000, 4))
        send(driver, ("z", 20_000, 0))
        assert sorted(results(driver)) == [
            ("a", 0, 10_000, [1, 3]),
            ("a", 10_000, 20_000, [4]),
            ("b", 0, 10_000, [2]),
        ]


def test_merged_sessions_keep_their_order() -> None:
    app = windowed(
        windows.Session(2_000 * MS, grace=5_000 * MS),
        lambda w: w.aggregate(list, lambda acc, v: [*acc, v["n"]], lambda a, b: a + b),
    )
    with TestDriver(app) as driver:
        send(driver, ("k", 0, 1), ("k", 4_000, 2), ("k", 2_000, 3), ("z", 100_000, 0))
        [(key, start, end, values)] = results(driver)
        assert (key, start, end) == ("k", 0, 4_000)
        assert values.index(1) < values.index(2), values
