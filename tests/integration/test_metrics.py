"""The worker's /metrics, /healthz and /readyz endpoints, scraped from real workers."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from support import ThreadedWorker, delete_topics, produce, produce_json, wait_for

from millstream import App
from millstream.config import Settings, load_settings


def fetch(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str, name: str, **labels: str) -> list[float]:
    """Values of the samples named ``name`` whose labels include ``labels``."""
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def metric(text: str, name: str, **labels: str) -> float:
    found = samples(text, name, **labels)
    if len(found) != 1:
        raise AssertionError(f"{len(found)} samples of {name}{labels} in metrics:\n{text}")
    return found[0]


def scrape(port: int) -> str:
    code, text = fetch(port, "/metrics")
    assert code == 200, text
    return text


def test_metrics_health_and_readiness(
    unique_name: Callable[[str], str], settings: Settings, bootstrap_servers: str
) -> None:
    app_id, src, out = unique_name("app"), unique_name("in"), unique_name("out")
    app = App(
        app_id,
        settings=load_settings(bootstrap_servers=bootstrap_servers, metrics_port=0),
        commit_interval=0.5,
    )
    app.stream(app.topic(src, partitions=2)).filter(lambda v: v["n"] % 2 == 0).to(
        app.topic(out, partitions=2)
    )
    runner = ThreadedWorker(app)
    worker = runner.worker
    try:
        wait_for(lambda: worker.metrics_port is not None, 30, "the metrics server")
        port = worker.metrics_port
        assert port is not None
        assert fetch(port, "/healthz")[0] == 200
        wait_for(lambda: fetch(port, "/readyz")[0] == 200, 30, "readiness after assignment")
        # Ready means some partitions: the group may hand out the second one later.
        wait_for(
            lambda: metric(scrape(port), "millstream_assigned_partitions") == 2,
            30,
            "both partitions assigned",
        )
        before = scrape(port)
        assert metric(before, "millstream_ready") == 1
        assert metric(before, "millstream_partitions_assigned_total") == 2
        assert metric(before, "millstream_processing_seconds_count") == 0
        produce_json(settings, src, [(str(n), {"n": n}) for n in range(1000)])
        produce(settings, src, [(b"broken", b"{not json")])
        wait_for(
            lambda: metric(scrape(port), "millstream_records_in_total") >= 1001,
            60,
            "records_in to reach 1001",
        )
        wait_for(
            lambda: metric(scrape(port), "millstream_commit_seconds_count") >= 1,
            30,
            "a commit after the records",
        )
        text = scrape(port)
        assert metric(text, "millstream_records_out_total") == 500
        assert metric(text, "millstream_topic_records_in_total", topic=src) == 1001
        assert metric(text, "millstream_topic_records_out_total", topic=out) == 500
        assert metric(text, "millstream_dead_letters_total") == 1
        assert metric(text, "millstream_assigned_partitions") == 2
        assert metric(text, "millstream_processing_seconds_count") >= 1
        assert metric(text, "millstream_processing_seconds_bucket", le="+Inf") == metric(
            text, "millstream_processing_seconds_count"
        )
        assert metric(text, "millstream_processing_seconds_sum") > 0
        assert metric(text, "millstream_commit_seconds_sum") > 0
        wait_for(
            lambda: len(samples(scrape(port), "millstream_partition_lag", topic=src)) == 2,
            10,
            "a lag gauge for each partition",
        )
        assert all(lag >= 0 for lag in samples(scrape(port), "millstream_partition_lag"))
        assert f'app_id="{app_id}"' in text
        assert fetch(port, "/nope")[0] == 404
    finally:
        stats = runner.stop()
    assert stats.partitions_revoked == 2, "both partitions are given back on shutdown"
    delete_topics(settings, [src, out, f"{app_id}-dlq", f"{app_id}-late"])


def counting_app(app_id: str, src: str, bootstrap_servers: str, local_dir: Path) -> App:
    """Counts records per key in a memory table (restored in full by every new worker)."""
    app = App(
        app_id,
        settings=load_settings(
            bootstrap_servers=bootstrap_servers, metrics_port=0, local_dir=local_dir
        ),
        commit_interval=0.5,
    )
    source = app.topic(src, partitions=2)
    counts = app.table("counts")

    @app.processor(source, tables=[counts])
    def count(record: Any, ctx: Any) -> None:
        table = ctx.table("counts")
        table[record.key] = table.get(record.key, 0) + 1

    return app


def test_restore_progress_and_rebalances_are_reported(
    unique_name: Callable[[str], str], settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    app_id, src = unique_name("app"), unique_name("in")
    first = ThreadedWorker(counting_app(app_id, src, bootstrap_servers, tmp_path / "a"))
    try:
        wait_for(lambda: first.running() and first.worker.metrics_port is not None, 30, "metrics")
        produce_json(settings, src, [(f"k{n % 300}", {"n": n}) for n in range(3000)])
        port = first.worker.metrics_port
        assert port is not None
        wait_for(
            lambda: (
                metric(scrape(port), "millstream_records_in_total") >= 3000
                and first.worker.stats.commits >= 1
            ),
            60,
            "the first worker to process and commit every record",
        )
        text = scrape(port)
        assert samples(text, "millstream_restore_records_to_restore") == [], "nothing to restore"
    finally:
        first.stop()

    second = ThreadedWorker(counting_app(app_id, src, bootstrap_servers, tmp_path / "b"))
    try:
        wait_for(lambda: second.running() and second.worker.metrics_port is not None, 30, "metrics")
        port = second.worker.metrics_port
        assert port is not None
        wait_for(
            lambda: (
                metric(scrape(port), "millstream_assigned_partitions") == 2
                and fetch(port, "/readyz")[0] == 200
            ),
            60,
            "both partitions assigned and restored",
        )
        text = scrape(port)
        for partition in ("0", "1"):
            total = metric(
                text, "millstream_restore_records_to_restore", store="counts", partition=partition
            )
            done = metric(
                text, "millstream_restore_records_restored", store="counts", partition=partition
            )
            # The changelog holds at least one record per key of the partition.
            assert total >= 1 and done == total, (partition, done, total)
        assert metric(text, "millstream_restored_records_total") >= 300
        assert metric(text, "millstream_partitions_assigned_total") == 2
        assert metric(text, "millstream_ready") == 1
    finally:
        second.stop()
    delete_topics(settings, [src, f"{app_id}-dlq", f"{app_id}-late"])
