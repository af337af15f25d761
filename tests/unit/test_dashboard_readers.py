"""Reading the workers' /metrics: against the worker's own metrics server, on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from millstream.config import Settings, load_settings
from millstream.dashboard import Reading
from millstream.dashboard.readers import SCAN_PORTS, ClusterReader, MetricsScraper, MetricsTargets
from millstream.processors.metrics import HealthServer, StatsCollector
from millstream.processors.worker_config import WorkerStats


def metrics_server(app_id: str, worker: str, stats: WorkerStats) -> HealthServer:
    registry = CollectorRegistry()
    gauges = {"consumer_lag": 7.0, "assigned_partitions": 3.0}
    registry.register(
        StatsCollector(lambda: stats, {"app_id": app_id, "worker": worker}, lambda: gauges)
    )
    return HealthServer("127.0.0.1", 0, registry, lambda: True, lambda: True)


@pytest.fixture
def shop_worker() -> Iterator[HealthServer]:
    server = metrics_server("shop", "shop-1", WorkerStats(records_in=120, records_out=80))
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_workers_counters_are_read(shop_worker: HealthServer) -> None:
    url = f"http://127.0.0.1:{shop_worker.port}/metrics"
    metrics = MetricsScraper("shop", MetricsTargets(given=(url,))).scrape(url)
    assert metrics.error is None
    assert (metrics.worker, metrics.records_in, metrics.records_out) == ("shop-1", 120, 80)
    assert (metrics.lag, metrics.assigned) == (7.0, 3.0)


def test_another_apps_worker_and_a_dead_port_are_errors(shop_worker: HealthServer) -> None:
    url = f"http://127.0.0.1:{shop_worker.port}/metrics"
    assert MetricsScraper("bank", MetricsTargets()).scrape(url).error == "no metrics of app 'bank'"
    dead = f"http://127.0.0.1:{closed_port()}/metrics"
    assert "refused" in str(MetricsScraper("shop", MetricsTargets()).scrape(dead).error).lower()


def test_given_urls_are_shown_down_and_scanned_ones_left_out(shop_worker: HealthServer) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/metrics"
    live = f"http://127.0.0.1:{shop_worker.port}/metrics"
    reading = Reading(time=1.0)
    MetricsScraper("shop", MetricsTargets(given=(dead,), scanned=(dead, live))).read(reading)
    assert [(w.url, w.error is None) for w in reading.workers] == [(dead, False), (live, True)]


def test_targets_come_from_the_flags_else_a_scan_from_metrics_port() -> None:
    given = MetricsTargets.for_settings(load_settings(metrics_port=9400), ["http://h:1/metrics"])
    assert given == MetricsTargets(given=("http://h:1/metrics",))
    scan = MetricsTargets.for_settings(load_settings(metrics_port=9400, metrics_host="0.0.0.0"), [])
    assert scan.scanned[0] == "http://127.0.0.1:9400/metrics" and len(scan.scanned) == SCAN_PORTS
    assert MetricsTargets.for_settings(load_settings(metrics_port=0), []) == MetricsTargets()
    unset = Settings(metrics_port=None)  # whatever the environment says
    assert MetricsTargets.for_settings(unset, []) == MetricsTargets()


def test_an_unreachable_cluster_is_noted_in_the_reading_not_raised() -> None:
    settings = load_settings(bootstrap_servers=f"127.0.0.1:{closed_port()}", client_timeout=1.0)
    reading = Reading(time=1.0)
    ClusterReader(settings, "shop", ["orders"]).read(reading)
    assert [e.split(":")[0] for e in reading.errors] == [
        "end offsets",
        "committed offsets",
        "group",
    ]
    assert reading.end_offsets == {} and reading.group is None
