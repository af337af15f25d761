"""Prometheus metrics of a running worker.

The counters live in the worker's :class:`WorkerStats` (counted per batch or per
event, never per record where a batch will do) and are read when scraped, so the
processing loop pays next to nothing for them. Served with ``/healthz`` and
``/readyz`` (processors/health.py) when ``MILLSTREAM_METRICS_PORT`` is set; worker
process ``i`` of ``millstream worker --processes N`` listens on that port + i.

Every series carries the labels ``app_id`` and ``worker`` (the consumer's client id):

- ``millstream_<counter>_total`` for each integer field of :class:`WorkerStats`
  (records in and out, dead letters, late records, commits, partitions assigned,
  revoked and lost, ...);
- ``millstream_topic_records_in_total`` / ``_out_total`` with a ``topic`` label;
- histograms ``millstream_processing_seconds`` (per consumed batch) and
  ``millstream_commit_seconds`` (per checkpoint that committed);
- gauges ``millstream_assigned_partitions``, ``millstream_ready``,
  ``millstream_consumer_lag`` (summed) and ``millstream_partition_lag``
  (``topic``, ``partition``), and ``millstream_restore_records_restored`` /
  ``millstream_restore_records_to_restore`` (``store``, ``partition``) for restores.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from millstream.config import Settings
from millstream.kafka import Consumer, TopicPartition
from millstream.processors.assigned import AssignedPartition
from millstream.processors.health import HealthServer
from millstream.processors.latency import LatencyHistogram

log = logging.getLogger("millstream.metrics")

__all__ = ["RestoreReading", "StatsCollector", "WorkerTelemetry"]

#: (store, partition, offsets replayed, offsets to replay) of one store partition.
RestoreReading = tuple[str, int, int, int]

_HELP = {
    "records_in": "Records consumed from source topics.",
    "records_out": "Records produced to output topics.",
    "dead_letters": "Records sent to the dead-letter topic.",
    "late_records": "Records that arrived after their windows closed.",
    "restored_records": "Changelog records replayed into state stores.",
    "rebalances": "Partition assignments and revocations seen.",
    "commits": "Checkpoints that committed offsets.",
    "aborts": "Transactions aborted (exactly-once).",
    "sink_pauses": "Times a sink could not write and input was paused (backpressure).",
    "partitions_assigned": "Partitions assigned to this worker.",
    "partitions_revoked": "Partitions revoked from this worker (after a commit).",
    "partitions_lost": "Partitions this worker lost without a commit.",
    "topic_records_in": "Records consumed, by source topic.",
    "topic_records_out": "Records produced, by output topic.",
    "processing_seconds": "Time to process one consumed batch, in seconds.",
    "commit_seconds": "Time of one checkpoint that committed, in seconds.",
}


class StatsCollector(Collector):
    """Exposes a :class:`WorkerStats` (integers as counters, ``dict[str, int]`` fields as
    counters by topic, :class:`LatencyHistogram` fields as histograms), named gauges,
    per-partition lag and restore progress."""

    def __init__(
        self,
        stats: Callable[[], Any],
        labels: dict[str, str],
        gauges: Callable[[], dict[str, float]],
        lag: Callable[[], dict[tuple[str, int], int]] = dict,
        restores: Callable[[], list[RestoreReading]] = list,
    ) -> None:
        self._stats = stats
        self._labels = labels
        self._gauges = gauges
        self._lag = lag
        self._restores = restores

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        names, values = list(self._labels), list(self._labels.values())
        for field in fields(stats):
            yield _family(
                f"millstream_{field.name}", field.name, getattr(stats, field.name), names, values
            )
        for name, value in self._gauges().items():
            gauge = GaugeMetricFamily(f"millstream_{name}", name.replace("_", " "), labels=names)
            gauge.add_metric(values, value)
            yield gauge
        yield from self._partition_gauges(names, values)

    def _partition_gauges(self, names: list[str], values: list[str]) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "millstream_partition_lag",
            "Records between the consumer's position and the partition's end.",
            labels=[*names, "topic", "partition"],
        )
        for (topic, partition), behind in sorted(self._lag().items()):
            lag.add_metric([*values, topic, str(partition)], behind)
        yield lag
        done = GaugeMetricFamily(
            "millstream_restore_records_restored",
            "Changelog offsets (records, transaction markers) replayed by the latest restore "
            "of a store partition.",
            labels=[*names, "store", "partition"],
        )
        total = GaugeMetricFamily(
            "millstream_restore_records_to_restore",
            "Changelog offsets the latest restore of a store partition replays in all.",
            labels=[*names, "store", "partition"],
        )
        for store, partition, replayed, to_replay in self._restores():
            done.add_metric([*values, store, str(partition)], replayed)
            total.add_metric([*values, store, str(partition)], to_replay)
        yield done
        yield total


def _family(name: str, field: str, value: object, names: list[str], values: list[str]) -> Metric:
    """The metric family of one WorkerStats field, by the field's type."""
    help_text = _HELP.get(field, field)
    if isinstance(value, LatencyHistogram):
        histogram = HistogramMetricFamily(name, help_text, labels=names)
        histogram.add_metric(values, value.buckets(), sum_value=value.sum)
        return histogram
    if isinstance(value, dict):
        by_topic = CounterMetricFamily(name, help_text, labels=[*names, "topic"])
        for topic, count in sorted(value.items()):
            by_topic.add_metric([*values, topic], count)
        return by_topic
    counter = CounterMetricFamily(name, help_text, labels=names)
    counter.add_metric(values, value)  # type: ignore[arg-type]
    return counter


class WorkerTelemetry:
    """The metrics server of one worker, and the consumer lag it reports."""

    def __init__(self, settings: Settings, app_id: str, client_id: str) -> None:
        self._settings = settings
        self._labels = {"app_id": app_id, "worker": client_id}
        self._server: HealthServer | None = None
        self._lag: dict[tuple[str, int], int] = {}
        self._registry: CollectorRegistry | None = None
        self._healthy: Callable[[], bool] = lambda: True
        self._ready: Callable[[], bool] = lambda: False

    @property
    def port(self) -> int | None:
        return self._server.port if self._server is not None else None

    def bind(
        self,
        stats: Callable[[], Any],
        *,
        gauges: Callable[[], dict[str, float]],
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
        restores: Callable[[], list[RestoreReading]] = list,
        extra: Collector | None = None,
    ) -> None:
        """Say where the metrics come from: the counters, named gauges, the two probes,
        restore progress and ``extra``'s metrics (the task metrics)."""
        registry = CollectorRegistry()

        def all_gauges() -> dict[str, float]:
            return {
                **gauges(),
                "ready": float(ready()),
                "consumer_lag": float(sum(self._lag.values())),
            }

        registry.register(
            StatsCollector(stats, self._labels, all_gauges, lambda: self._lag, restores)
        )
        if extra is not None:
            registry.register(extra)
        self._registry, self._healthy, self._ready = registry, healthy, ready

    @property
    def registry(self) -> CollectorRegistry:
        """Every metric this worker serves (after :meth:`bind`)."""
        assert self._registry is not None, "telemetry used before bind()"
        return self._registry

    def start(self) -> None:
        """Serve metrics if ``MILLSTREAM_METRICS_PORT`` is set (0: any free port)."""
        port = self._settings.metrics_port
        if port is None:
            return
        index = int(os.environ.get("MILLSTREAM_WORKER_INDEX", "0"))
        self._server = HealthServer(
            self._settings.metrics_host,
            port + index if port else 0,
            self.registry,
            self._healthy,
            self._ready,
        )

    def measure_lag(
        self, consumer: Consumer, partitions: dict[tuple[str, int], AssignedPartition]
    ) -> None:
        """Lag per partition from the client's cached high watermarks; no network calls."""
        if self._server is None:
            return
        lag = {}
        for key, part in partitions.items():
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
            except Exception:
                continue
            position = part.next_offset
            if high >= 0 and position is not None:
                lag[key] = max(high - position, 0)
        self._lag = lag

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
