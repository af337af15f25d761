"""Where the dashboard's numbers come from: the cluster (admin requests) and the
workers' /metrics (HTTP). Neither needs anything from the workers but what they serve.

Every read is bounded and a failed part only leaves a note in the reading: a page
that is watching an outage must go on showing what it can.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from millstream.config import Settings
from millstream.dashboard.model import Reading, WorkerMetrics
from millstream.errors import MillstreamError
from millstream.kafka import TopicAdmin
from millstream.kafka.groups import GroupAdmin, Partition

#: How long one /metrics request may take; a worker that is slower is shown as down.
SCRAPE_TIMEOUT = 1.0

#: How many ports from ``metrics_port`` on are scanned when no --metrics URL is given
#: (worker process i of ``--processes N`` serves on metrics_port + i).
SCAN_PORTS = 16


class ClusterReader:
    """Reads the end offsets of an app's topics and its group's offsets and members."""

    def __init__(self, settings: Settings, group_id: str, topics: Iterable[str]) -> None:
        self._group_id = group_id
        self._topics = sorted(set(topics))
        self._admin = TopicAdmin(settings)
        self._groups = GroupAdmin(settings)

    def read(self, reading: Reading) -> None:
        """Fill ``reading`` with what the cluster says now; failures go to its errors."""
        try:
            counts = self._admin.partition_counts()
            wanted = [(t, p) for t in self._topics for p in range(counts.get(t, 0))]
            reading.end_offsets.update(self._admin.end_offsets(wanted))
        except MillstreamError as exc:
            reading.errors.append(f"end offsets: {exc}")
        try:
            reading.committed.update(self._groups.committed(self._group_id))
        except MillstreamError as exc:
            reading.errors.append(f"committed offsets: {exc}")
        try:
            reading.group = self._groups.describe(self._group_id)
        except MillstreamError as exc:
            reading.errors.append(f"group: {exc}")


@dataclass(frozen=True)
class MetricsTargets:
    """Which /metrics URLs to scrape: the ones given, else a scan of local ports.

    ``scanned`` URLs that do not answer are left out of the page (most ports of a
    scan are expected to be empty); ``given`` ones that do not answer are shown down.
    """

    given: tuple[str, ...] = ()
    scanned: tuple[str, ...] = ()

    @classmethod
    def for_settings(cls, settings: Settings, urls: Iterable[str]) -> MetricsTargets:
        """``urls`` when any; else the local ports from ``settings.metrics_port`` (when set
        to a fixed port) up to :data:`SCAN_PORTS` of them; else nothing."""
        given = tuple(urls)
        if given or not settings.metrics_port:
            return cls(given=given)
        host = settings.metrics_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        first = settings.metrics_port
        last = min(first + SCAN_PORTS, 65536)
        return cls(scanned=tuple(f"http://{host}:{port}/metrics" for port in range(first, last)))


class MetricsScraper:
    """Scrapes the workers' /metrics for one app's counters."""

    def __init__(self, app_id: str, targets: MetricsTargets) -> None:
        self._app_id = app_id
        self._targets = targets

    def read(self, reading: Reading) -> None:
        """Add one :class:`WorkerMetrics` per answering (or given) target to ``reading``."""
        for url in self._targets.given:
            reading.workers.append(self.scrape(url))
        for url in self._targets.scanned:
            metrics = self.scrape(url)
            if metrics.error is None and metrics.worker is not None:
                reading.workers.append(metrics)

    def scrape(self, url: str) -> WorkerMetrics:
        """One worker's counters; a failure is reported in ``error``, never raised."""
        try:
            with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as response:
                text = response.read().decode("utf-8", errors="replace")
        except (OSError, urllib.error.URLError) as exc:
            return WorkerMetrics(url=url, error=_reason(exc))
        try:
            return self._parse(url, text)
        except ValueError as exc:
            return WorkerMetrics(url=url, error=f"not Prometheus text: {exc}")

    def _parse(self, url: str, text: str) -> WorkerMetrics:
        values: dict[str, float] = {}
        worker: str | None = None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("app_id") != self._app_id:
                    continue
                worker = sample.labels.get("worker", worker)
                values[sample.name] = sample.value
        if worker is None:
            return WorkerMetrics(url=url, error=f"no metrics of app {self._app_id!r}")
        return WorkerMetrics(
            url=url,
            worker=worker,
            records_in=values.get("millstream_records_in_total"),
            records_out=values.get("millstream_records_out_total"),
            lag=values.get("millstream_consumer_lag"),
            assigned=values.get("millstream_assigned_partitions"),
        )


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc)


def take_reading(cluster: ClusterReader, scraper: MetricsScraper) -> Reading:
    """One reading of everything: the cluster, then the workers."""
    reading = Reading(time=time.time())
    cluster.read(reading)
    scraper.read(reading)
    return reading


__all__ = ["ClusterReader", "MetricsScraper", "MetricsTargets", "Partition", "take_reading"]
