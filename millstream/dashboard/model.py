"""The dashboard's data model: readings of the cluster and the workers in, snapshots out.

A :class:`Reading` is what one refresh gathered (end offsets, the group's committed
offsets and members, each worker's /metrics counters). :class:`DashboardModel` keeps
the history a page needs (rates over time) and turns the latest reading into one
JSON-able snapshot. It does no I/O: :mod:`millstream.dashboard.readers` gathers the
readings, so the model is tested with readings made by hand.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from millstream.groups.status import lag
from millstream.kafka.groups import GroupDescription, Partition

#: Points kept per series: two minutes at the default one-second refresh.
HISTORY = 120

#: Seconds each rate is measured over.
RATE_WINDOW = 3.0


@dataclass(frozen=True)
class WorkerMetrics:
    """One scrape of a worker's /metrics; ``error`` says why it failed when it did."""

    url: str
    worker: str | None = None
    records_in: float | None = None
    records_out: float | None = None
    lag: float | None = None
    assigned: float | None = None
    error: str | None = None


@dataclass
class Reading:
    """What one refresh saw at ``time`` (epoch seconds). ``errors`` are the parts that
    could not be read (the rest of the reading is still good)."""

    time: float
    end_offsets: dict[Partition, int] = field(default_factory=dict)
    committed: dict[Partition, int] = field(default_factory=dict)
    group: GroupDescription | None = None
    workers: list[WorkerMetrics] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class RateSeries:
    """Records/s derived from a growing total, over the last ``history`` readings.

    Each rate is measured over about the last ``window`` seconds (at least between
    the last two readings), so a total that moves in bursts (batches, checkpoints)
    does not draw a saw. A total that went down (a topic deleted and made again, a
    worker restarted) starts the measurement afresh instead of showing a negative rate.
    """

    def __init__(self, history: int = HISTORY, window: float = RATE_WINDOW) -> None:
        self.points: deque[tuple[float, float]] = deque(maxlen=history)
        self.total: float | None = None
        self.window = window
        self._totals: deque[tuple[float, float]] = deque()

    @property
    def rate(self) -> float | None:
        """The latest rate; None until two readings are in."""
        return self.points[-1][1] if self.points else None

    def add(self, time: float, total: float | None) -> None:
        """Add one reading of the total; None (not readable now) leaves a gap."""
        if total is None:
            self._totals.clear()
            return
        self.total = total
        totals = self._totals
        if totals and time <= totals[-1][0]:
            return
        if totals and total < totals[-1][1]:
            totals.clear()
        totals.append((time, total))
        while len(totals) > 2 and totals[1][0] <= time - self.window:
            totals.popleft()
        if len(totals) >= 2:
            first_time, first_total = totals[0]
            self.points.append((time, (total - first_total) / (time - first_time)))

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "rate": self.rate,
            "points": [[round(t, 3), round(r, 2)] for t, r in self.points],
        }


class DashboardModel:
    """The history and latest state of one app, as the page shows it.

    ``inputs`` are the app's source topics that nothing of it writes (the records
    coming in), ``outputs`` the topics it writes that it does not read again (the
    records going out), ``consumed`` every topic its group reads (lag is measured on
    these, internal repartition topics included).
    """

    def __init__(
        self,
        app_id: str,
        *,
        inputs: Iterable[str],
        outputs: Iterable[str],
        consumed: Iterable[str],
        history: int = HISTORY,
        rate_window: float = RATE_WINDOW,
    ) -> None:
        self.app_id = app_id
        self.inputs = sorted(set(inputs))
        self.outputs = sorted(set(outputs))
        self.consumed = sorted(set(consumed))
        self._history = history
        self._window = rate_window
        self.records_in = RateSeries(history, rate_window)
        self.records_out = RateSeries(history, rate_window)
        self._lag_points: deque[tuple[float, float]] = deque(maxlen=history)
        self._worker_in: dict[str, RateSeries] = {}
        self._worker_out: dict[str, RateSeries] = {}
        self._latest = Reading(time=0.0)

    def add(self, reading: Reading) -> None:
        """Take in one reading: rates move on, and it becomes the latest state."""
        self._latest = reading
        self.records_in.add(reading.time, _topic_total(reading.end_offsets, self.inputs))
        self.records_out.add(reading.time, _topic_total(reading.end_offsets, self.outputs))
        known = [row["lag"] for row in self.lag_rows() if row["lag"] is not None]
        if known:
            self._lag_points.append((reading.time, float(sum(known))))
        seen = set()
        for worker in reading.workers:
            seen.add(worker.url)
            for series, total in (
                (self._worker_in, worker.records_in),
                (self._worker_out, worker.records_out),
            ):
                series.setdefault(worker.url, RateSeries(self._history, self._window)).add(
                    reading.time, total
                )
        for url in set(self._worker_in) - seen:
            del self._worker_in[url], self._worker_out[url]

    def lag_rows(self) -> list[dict[str, Any]]:
        """One row per partition of the consumed topics: end offset, committed offset,
        lag (None before the group committed there) and the client that owns it.

        Lag is :func:`millstream.groups.status.lag` of the same high watermark and
        committed offset, so it equals what ``millstream status`` shows."""
        reading = self._latest
        owners = _owners(reading.group)
        rows = []
        for topic, partition in sorted(reading.end_offsets):
            if topic not in self.consumed:
                continue
            end = reading.end_offsets[(topic, partition)]
            committed = reading.committed.get((topic, partition))
            rows.append(
                {
                    "topic": topic,
                    "partition": partition,
                    "end": end,
                    "committed": committed,
                    "lag": lag(committed, end),
                    "owner": owners.get((topic, partition)),
                }
            )
        return rows

    def snapshot(self, panels: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The page's whole state as one JSON-able dict (the server sends it as is)."""
        reading = self._latest
        rows = self.lag_rows()
        known = [row["lag"] for row in rows if row["lag"] is not None]
        return {
            "app": self.app_id,
            "time": reading.time,
            "errors": list(reading.errors),
            "throughput": {
                "in": {"topics": self.inputs, **self.records_in.to_json()},
                "out": {"topics": self.outputs, **self.records_out.to_json()},
            },
            "lag": {
                "total": sum(known) if known else None,
                "points": [[round(t, 3), v] for t, v in self._lag_points],
                "partitions": rows,
            },
            "group": self._group_json(),
            "workers": self._workers_json(),
            "panels": panels or [],
        }

    def _group_json(self) -> dict[str, Any]:
        group = self._latest.group
        if group is None:
            return {"state": None, "protocol": None, "members": []}
        by_worker = {w.worker: w.url for w in self._latest.workers if w.worker}
        members = []
        # Sorted so the page's table does not reorder between refreshes.
        for member in sorted(group.members, key=lambda m: (m.client_id, m.member_id)):
            url = by_worker.get(member.client_id)
            members.append(
                {
                    "client_id": member.client_id,
                    "member_id": member.member_id,
                    "host": member.host,
                    "partitions": [f"{t}[{p}]" for t, p in member.partitions],
                    "in_rate": self._worker_in[url].rate if url else None,
                    "out_rate": self._worker_out[url].rate if url else None,
                }
            )
        return {"state": group.state, "protocol": group.protocol, "members": members}

    def _workers_json(self) -> list[dict[str, Any]]:
        return [
            {
                "url": w.url,
                "up": w.error is None,
                "error": w.error,
                "worker": w.worker,
                "records_in": w.records_in,
                "records_out": w.records_out,
                "in_rate": self._worker_in[w.url].rate,
                "out_rate": self._worker_out[w.url].rate,
                "lag": w.lag,
                "assigned": w.assigned,
            }
            for w in self._latest.workers
        ]


def _topic_total(end_offsets: dict[Partition, int], topics: list[str]) -> float | None:
    """The sum of the end offsets of ``topics``; None when none of them was read."""
    wanted = set(topics)
    ends = [end for (topic, _), end in end_offsets.items() if topic in wanted]
    return float(sum(ends)) if ends else None


def _owners(group: GroupDescription | None) -> dict[Partition, str]:
    if group is None:
        return {}
    return {tp: member.client_id for member in group.members for tp in member.partitions}
