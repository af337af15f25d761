"""An independent oracle for windowed aggregations, written from docs/windows.md alone.

It shares no code with ``millstream.processors.windows``: it re-derives, in plain
Python, what ``.final()`` must emit for records given per input partition in
their order within that partition, so the tests can check the implementation
against the contract rather than against itself.

Every function takes ``partitions``: one sequence of ``(key, event_time_ms, value)``
per input partition, in partition order. Durations are milliseconds. Stream time
is kept per partition, as the contract says; a key lives in one partition. The
result is an :class:`Outcome`: the windows that closed, as
``{(key, start, end): aggregate}`` with ``end`` as emitted (exclusive for tumbling
and hopping, inclusive for sliding and session), and the number of late records.
Windows that never closed (stream time did not reach their close time) are not
in the results, exactly as ``.final()`` would not have emitted them yet.
"""

from __future__ import annotations

import bisect
import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

Record = tuple[str, int, Any]
WindowId = tuple[str, int, int]


@dataclass(frozen=True)
class Aggregation:
    """How values fold into an aggregate, and how two aggregates merge (sessions)."""

    initial: Callable[[], Any]
    add: Callable[[Any, Any], Any]
    merge: Callable[[Any, Any], Any]


def count() -> Aggregation:
    return Aggregation(lambda: 0, lambda agg, _value: agg + 1, lambda a, b: a + b)


def total(fn: Callable[[Any], Any]) -> Aggregation:
    """The oracle of ``.sum(fn)``."""
    return Aggregation(lambda: 0, lambda agg, value: agg + fn(value), lambda a, b: a + b)


@dataclass
class Outcome:
    results: dict[WindowId, Any] = field(default_factory=dict)
    late: int = 0


def tumbling(
    partitions: Iterable[Sequence[Record]], size: int, grace: int, aggregation: Aggregation
) -> Outcome:
    return hopping(partitions, size, size, grace, aggregation)


def hopping(
    partitions: Iterable[Sequence[Record]],
    size: int,
    advance: int,
    grace: int,
    aggregation: Aggregation,
) -> Outcome:
    """Half-open ``[start, start + size)``, starts on multiples of ``advance``.

    A record joins each of its windows still open (``st < end + grace``); with none
    open it is late. A closed window is never touched again, so its aggregate when
    stream time finally passes ``end + grace`` is the one emitted.
    """
    outcome = Outcome()
    for records in partitions:
        windows: dict[tuple[str, int], Any] = {}
        st: int | None = None
        for key, t, value in records:
            st = t if st is None else max(st, t)
            added = False
            for start in _fixed_starts(t, size, advance):
                if st < start + size + grace:
                    current = windows.get((key, start), _MISSING)
                    base = aggregation.initial() if current is _MISSING else current
                    windows[(key, start)] = aggregation.add(base, value)
                    added = True
            if not added:
                outcome.late += 1
        for (key, start), aggregate in windows.items():
            if st is not None and start + size + grace <= st:
                outcome.results[(key, start, start + size)] = aggregate
    return outcome


def _fixed_starts(t: int, size: int, advance: int) -> Iterator[int]:
    start = t - t % advance
    while start > t - size:
        yield start
        start -= advance


_MISSING = object()


@dataclass(frozen=True)
class _Arrival:
    time: int
    stream_time: int
    order: int
    value: Any


def sliding(
    partitions: Iterable[Sequence[Record]], size: int, grace: int, aggregation: Aggregation
) -> Outcome:
    """Kafka Streams sliding windows ``[start, end]``, ``end - start = size``.

    Late: ``t + size + grace < st``. A window closes at ``end + grace + 1``; its final
    value is built only from the records that arrived while ``st <= end + grace``;
    it exists if it is the left window ``[t - size, t]`` of one of them, or the right
    window ``[t + 1, t + 1 + size]`` of one of them and holds at least one of them.
    """
    outcome = Outcome()
    for records in partitions:
        arrived: dict[str, list[_Arrival]] = defaultdict(list)
        st: int | None = None
        for order, (key, t, value) in enumerate(records):
            st = t if st is None else max(st, t)
            if t + size + grace < st:
                outcome.late += 1
                continue
            arrived[key].append(_Arrival(t, st, order, value))
        if st is None:
            continue
        for key, arrivals in arrived.items():
            for (start, end), aggregate in _sliding_windows(
                arrivals, size, grace, st, aggregation
            ).items():
                outcome.results[(key, start, end)] = aggregate
    return outcome


def _sliding_windows(
    arrivals: list[_Arrival], size: int, grace: int, final_st: int, aggregation: Aggregation
) -> dict[tuple[int, int], Any]:
    by_time = sorted(arrivals, key=lambda a: (a.time, a.order))
    times = [a.time for a in by_time]
    candidates = {(a.time - size, a.time) for a in arrivals}
    candidates |= {(a.time + 1, a.time + 1 + size) for a in arrivals}
    first_seen: dict[int, int] = {}
    for a in arrivals:
        first_seen.setdefault(a.time, a.stream_time)
    never = final_st + 1
    windows: dict[tuple[int, int], Any] = {}
    for start, end in candidates:
        close = end + grace + 1
        if final_st < close:
            continue
        inside = [
            a
            for a in by_time[bisect.bisect_left(times, start) : bisect.bisect_right(times, end)]
            if a.stream_time < close
        ]
        is_left = first_seen.get(end, never) < close
        is_right = first_seen.get(start - 1, never) < close and bool(inside)
        if is_left or is_right:
            inside.sort(key=lambda a: a.order)
            windows[(start, end)] = functools.reduce(
                aggregation.add, (a.value for a in inside), aggregation.initial()
            )
    return windows


@dataclass
class _Session:
    start: int
    end: int
    aggregate: Any


def session(
    partitions: Iterable[Sequence[Record]], gap: int, grace: int, aggregation: Aggregation
) -> Outcome:
    """Sessions ``[start, end]`` closing at ``end + gap + grace + 1``.

    A record merges with every open session of its key with
    ``start - gap <= t <= end + gap``; with none it starts ``[t, t]``. It is late when
    the merged (or new) session would already be closed.
    """
    outcome = Outcome()
    for records in partitions:
        sessions: dict[str, list[_Session]] = defaultdict(list)
        st: int | None = None
        for key, t, value in records:
            st = t if st is None else max(st, t)
            open_sessions = _close_sessions(key, sessions[key], gap, grace, st, outcome)
            touching = [s for s in open_sessions if s.start - gap <= t <= s.end + gap]
            start = min([t, *(s.start for s in touching)])
            end = max([t, *(s.end for s in touching)])
            if end + gap + grace < st:
                outcome.late += 1
                sessions[key] = open_sessions
                continue
            touching.sort(key=lambda s: s.start)
            merged = (
                functools.reduce(aggregation.merge, (s.aggregate for s in touching))
                if touching
                else aggregation.initial()
            )
            rest = [s for s in open_sessions if all(s is not m for m in touching)]
            sessions[key] = [*rest, _Session(start, end, aggregation.add(merged, value))]
        if st is not None:
            for key, kept in sessions.items():
                _close_sessions(key, kept, gap, grace, st, outcome)
    return outcome


def _close_sessions(
    key: str, sessions: list[_Session], gap: int, grace: int, st: int, outcome: Outcome
) -> list[_Session]:
    """Emit the sessions closed at stream time ``st``; return the open ones."""
    still_open = []
    for s in sessions:
        if s.end + gap + grace < st:
            outcome.results[(key, s.start, s.end)] = s.aggregate
        else:
            still_open.append(s)
    return still_open
