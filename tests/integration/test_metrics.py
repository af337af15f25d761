"""The worker's /metrics, /healthz and /readyz endpoints."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

from support import ThreadedWorker, delete_topics, produce_json, wait_for

from millstream import App
from millstream.config import Settings, load_settings


def fetch(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


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
        produce_json(settings, src, [(str(n), {"n": n}) for n in range(1000)])
        wait_for(
            lambda: metric(fetch(port, "/metrics")[1], "millstream_records_in_total") >= 1000,
            60,
            "records_in to reach 1000",
        )
        text = fetch(port, "/metrics")[1]
        assert metric(text, "millstream_records_out_total") == 500
        assert metric(text, "millstream_dead_letters_total") == 0
        assert metric(text, "millstream_assigned_partitions") == 2
        assert f'app_id="{app_id}"' in text
        assert fetch(port, "/nope")[0] == 404
    finally:
        runner.stop()
    delete_topics(settings, [src, out, f"{app_id}-dlq", f"{app_id}-late"])
