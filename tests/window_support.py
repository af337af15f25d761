"""Small windowed apps for the unit tests of windows, run on the test driver.

Times in these helpers are milliseconds from START, so a test reads as the
hand computation it checks: ``("k", 2_000, 5)`` is key ``k`` at START + 2 s with
``n = 5``. The input topic has one partition, so every key shares one stream time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from millstream import App, windows
from millstream.processors.grouping import WindowedStream, WindowResults
from millstream.testing import TestDriver

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MS = timedelta(milliseconds=1)

Aggregate = Callable[[WindowedStream], WindowResults]
Result = tuple[str, int, int, Any]


def windowed(
    window: windows.Window,
    aggregate: Aggregate = WindowedStream.count,
    *,
    current: bool = False,
    **options: Any,
) -> App:
    """An app aggregating ``events`` by key in ``window`` (store ``w``) into ``results``."""
    app = App("win")
    events = app.topic("events", partitions=1)
    grouped = app.stream(events, timestamp=lambda v: v["ts"] + START).group_by_key()
    results = aggregate(grouped.window(window, name="w", **options))
    (results.current() if current else results).to(app.topic("results"))
    return app


def send(driver: TestDriver, *events: tuple[str, int, int]) -> None:
    """Send ``(key, time, n)`` events: the value ``{"ts": time, "n": n}``."""
    for key, ts, number in events:
        driver.send("events", {"ts": ts, "n": number}, key=key)


def results(driver: TestDriver) -> list[Result]:
    """The results since the last read, as ``(key, start, end, value)`` with times from START."""
    return [
        (r.key, r.value["start"] - START, r.value["end"] - START, r.value["value"])
        for r in driver.read("results")
    ]


def n(value: Any) -> Any:
    """The number an event carries (for ``sum(n)``, ``min(n)``, ...)."""
    return value["n"]
