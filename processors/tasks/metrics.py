"""Counters and timings per task name, exposed with the worker's metrics.

``millstream_tasks_<event>_total{task=...}`` for queued, started, succeeded,
failed (attempts), retried, dead-lettered and skipped (already done) tasks;
``millstream_tasks_running{task=...}``; and histograms of the wait (taken from its
partition until started) and the run time of attempts, in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from millstream.processors.latency import LatencyHistogram

BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0)
EVENTS = ("queued", "started", "succeeded", "failed", "retried", "dead_lettered", "skipped")


@dataclass
class _TaskCounts:
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENTS, 0))
    running: int = 0
    wait: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(BUCKETS))
    run: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(BUCKETS))


class TaskMetrics(Collector):
    """What the tasks of one worker did. Updated by the worker's thread only."""

    def __init__(self, labels: dict[str, str] | None = None) -> None:
        self.labels = dict(labels or {})
        self.tasks: dict[str, _TaskCounts] = {}

    def _of(self, task: str) -> _TaskCounts:
        counts = self.tasks.get(task)
        if counts is None:
            counts = self.tasks[task] = _TaskCounts()
        return counts

    def count(self, task: str, event: str) -> int:
        counts = self.tasks.get(task)
        return counts.events[event] if counts else 0

    def queued(self, task: str) -> None:
        self._of(task).events["queued"] += 1

    def started(self, task: str, waited: float) -> None:
        counts = self._of(task)
        counts.events["started"] += 1
        counts.running += 1
        counts.wait.observe(waited)

    def succeeded(self, task: str, ran: float) -> None:
        self._ended(task, ran, "succeeded")

    def failed(self, task: str, ran: float) -> None:
        self._ended(task, ran, "failed")

    def _ended(self, task: str, ran: float, event: str) -> None:
        counts = self._of(task)
        counts.events[event] += 1
        counts.running -= 1
        counts.run.observe(ran)

    def retried(self, task: str) -> None:
        self._of(task).events["retried"] += 1

    def dead_lettered(self, task: str) -> None:
        self._of(task).events["dead_lettered"] += 1

    def skipped(self, task: str) -> None:
        self._of(task).events["skipped"] += 1

    def collect(self) -> Iterator[Metric]:
        names = [*self.labels, "task"]
        tasks = dict(self.tasks)
        for event in EVENTS:
            counter = CounterMetricFamily(
                f"millstream_tasks_{event}", f"tasks {event.replace('_', ' ')}", labels=names
            )
            for task, counts in tasks.items():
                counter.add_metric([*self.labels.values(), task], counts.events[event])
            yield counter
        gauge = GaugeMetricFamily("millstream_tasks_running", "tasks running", labels=names)
        for task, counts in tasks.items():
            gauge.add_metric([*self.labels.values(), task], counts.running)
        yield gauge
        for kind, what in (("wait", "time tasks waited"), ("run", "time attempts ran")):
            histogram = HistogramMetricFamily(
                f"millstream_tasks_{kind}_seconds", f"{what}, in seconds", labels=names
            )
            for task, counts in tasks.items():
                hist: LatencyHistogram = getattr(counts, kind)
                histogram.add_metric(
                    [*self.labels.values(), task], hist.buckets(), sum_value=hist.sum
                )
            yield histogram
