"""Prometheus metrics, ``/healthz`` and ``/readyz`` for a running worker.

The counters are read from the worker's :class:`WorkerStats` when scraped, so
the processing loop pays nothing per record for them. Enabled with
``MILLSTREAM_METRICS_PORT``; worker process ``i`` of ``millstream worker
--processes N`` listens on that port + i.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from millstream.config import Settings
from millstream.kafka import Consumer, TopicPartition
from millstream.processors.assigned import AssignedPartition

log = logging.getLogger("millstream.metrics")

__all__ = ["HealthServer", "StatsCollector", "WorkerTelemetry"]

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
}


class StatsCollector(Collector):
    """Exposes a stats object's integer fields as ``millstream_<field>_total`` counters."""

    def __init__(
        self,
        stats: Callable[[], Any],
        labels: dict[str, str],
        gauges: Callable[[], dict[str, float]],
    ) -> None:
        self._stats = stats
        self._labels = labels
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        names, values = list(self._labels), list(self._labels.values())
        for field in fields(stats):
            counter = CounterMetricFamily(
                f"millstream_{field.name}", _HELP.get(field.name, field.name), labels=names
            )
            counter.add_metric(values, getattr(stats, field.name))
            yield counter
        for name, value in self._gauges().items():
            gauge = GaugeMetricFamily(f"millstream_{name}", name.replace("_", " "), labels=names)
            gauge.add_metric(values, value)
            yield gauge


class HealthServer:
    """Serves ``/metrics``, ``/healthz`` (the loop is alive) and ``/readyz`` (the worker
    has partitions and is not restoring) on a background thread."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
        extra: Collector | None = None,
    ) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._send(200, generate_latest(registry), "text/plain; version=0.0.4")
                elif path == "/healthz":
                    ok = healthy()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"stalled\n")
                elif path == "/readyz":
                    ok = ready()
                    self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", host, server.port)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class WorkerTelemetry:
    """The metrics server of one worker, and the consumer lag it reports."""

    def __init__(self, settings: Settings, app_id: str, client_id: str) -> None:
        self._settings = settings
        self._labels = {"app_id": app_id, "worker": client_id}
        self._server: HealthServer | None = None
        self._lag: dict[tuple[str, int], int] = {}

    @property
    def port(self) -> int | None:
        return self._server.port if self._server is not None else None

    def start(
        self,
        stats: Callable[[], Any],
        *,
        gauges: Callable[[], dict[str, float]],
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
        extra: Collector | None = None,
    ) -> None:
        """Serve metrics if ``MILLSTREAM_METRICS_PORT`` is set (0: any free port), with
        ``extra``'s besides the counters and gauges (the task metrics)."""
        port = self._settings.metrics_port
        if port is None:
            return
        index = int(os.environ.get("MILLSTREAM_WORKER_INDEX", "0"))
        registry = CollectorRegistry()

        def all_gauges() -> dict[str, float]:
            return {**gauges(), "consumer_lag": float(sum(self._lag.values()))}

        registry.register(StatsCollector(stats, self._labels, all_gauges))
        if extra is not None:
            registry.register(extra)
        self._server = HealthServer(
            self._settings.metrics_host, port + index if port else 0, registry, healthy, ready
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
