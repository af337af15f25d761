"""The worker's metrics as Prometheus reads them: counters, per-topic counts, latency
histograms, lag per partition and restore progress."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from millstream.processors.health import STALL_TIMEOUT, is_alive
from millstream.processors.latency import LatencyHistogram
from millstream.processors.metrics import StatsCollector
from millstream.processors.worker_config import WorkerStats

LABELS = {"app_id": "shop", "worker": "shop-1"}


def scrape(collector: StatsCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k not in LABELS))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_histogram_counts_each_duration_in_the_first_bucket_that_holds_it() -> None:
    histogram = LatencyHistogram((0.01, 0.1, 1.0))
    for seconds in (0.005, 0.01, 0.05, 2.0):
        histogram.observe(seconds)
    assert histogram.buckets() == [("0.01", 2.0), ("0.1", 3.0), ("1.0", 3.0), ("+Inf", 4.0)]
    assert histogram.count == 4
    assert histogram.sum == pytest.approx(2.065)


def test_buckets_must_ascend() -> None:
    with pytest.raises(ValueError, match="ascending"):
        LatencyHistogram((1.0, 0.1))


def test_stats_become_counters_topics_histograms_and_gauges() -> None:
    stats = WorkerStats(records_in=7, partitions_assigned=3, partitions_lost=1)
    stats.topic_records_in.update({"orders": 5, "payments": 2})
    stats.topic_records_out["alerts"] = 4
    stats.processing_seconds.observe(0.02)
    stats.commit_seconds.observe(0.3)
    samples = scrape(
        StatsCollector(
            lambda: stats,
            LABELS,
            lambda: {"ready": 1.0},
            lag=lambda: {("orders", 0): 12, ("orders", 1): 0},
            restores=lambda: [("counts", 0, 40, 100)],
        )
    )
    assert samples[("millstream_records_in_total", ())] == 7
    assert samples[("millstream_partitions_assigned_total", ())] == 3
    assert samples[("millstream_partitions_lost_total", ())] == 1
    assert samples[("millstream_topic_records_in_total", (("topic", "orders"),))] == 5
    assert samples[("millstream_topic_records_in_total", (("topic", "payments"),))] == 2
    assert samples[("millstream_topic_records_out_total", (("topic", "alerts"),))] == 4
    assert samples[("millstream_processing_seconds_count", ())] == 1
    assert samples[("millstream_processing_seconds_bucket", (("le", "0.025"),))] == 1
    assert samples[("millstream_processing_seconds_bucket", (("le", "0.01"),))] == 0
    assert samples[("millstream_commit_seconds_sum", ())] == pytest.approx(0.3)
    assert samples[("millstream_ready", ())] == 1
    assert samples[("millstream_partition_lag", (("partition", "0"), ("topic", "orders")))] == 12
    restore = (("partition", "0"), ("store", "counts"))
    assert samples[("millstream_restore_records_restored", restore)] == 40
    assert samples[("millstream_restore_records_to_restore", restore)] == 100


def test_a_worker_stays_alive_while_a_restore_blocks_its_loop() -> None:
    now = 1000.0
    assert is_alive(now - STALL_TIMEOUT + 1, False, now)
    assert not is_alive(now - STALL_TIMEOUT - 1, False, now), "a stuck loop is not alive"
    assert is_alive(now - STALL_TIMEOUT - 1, True, now)
