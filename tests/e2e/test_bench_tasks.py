"""scripts/bench tasks end to end: tiny counts print a row per task queue (millstream in
ordered mode, in queue mode with 1, 2 and 4 workers, and Celery) with a throughput and a
round-trip latency, and the redis-server the run started for Celery is gone afterwards.

The first run on a machine installs Celery into .local/bench/celery and, when missing,
Debian's redis-server; after that the run takes well under a minute. ``--no-docs`` leaves
docs/benchmarks.md alone.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from bench_support import number, servers_under, table_rows

ROOT = Path(__file__).resolve().parents[2]
CONTENDERS = {
    "millstream, 1 worker process",
    "millstream queue, 1 worker",
    "millstream queue, 2 workers",
    "millstream queue, 4 workers",
    "Celery prefork, concurrency 2",
}


@pytest.mark.timeout(420)
def test_bench_tasks_prints_a_row_per_queue_and_stops_redis(bootstrap_servers: str) -> None:
    command = [
        str(ROOT / "scripts" / "bench"),
        "tasks",
        "--tasks=300",
        "--round-trips=30",
        "--repeat=1",
        "--contenders=millstream,celery",
        "--no-docs",
    ]
    env = {**os.environ, "MILLSTREAM_BOOTSTRAP_SERVERS": bootstrap_servers}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = table_rows(done.stdout, "tasks")
    assert set(rows) == CONTENDERS, done.stdout
    for label, cells in rows.items():
        assert number(cells[2]) > 0, f"{label}: {cells}\n{done.stderr[-3000:]}"
        assert number(cells[3]) > 0, f"{label} has no round-trip latency: {cells}"
    run_dir = re.search(r"logs and results.json: (\S+)", done.stderr)
    assert run_dir, done.stderr[-3000:]
    redis_dir = ROOT / ".local" / "bench" / "redis" / Path(run_dir.group(1)).name
    assert any(redis_dir.glob("*/redis.log")), f"no redis-server ran under {redis_dir}"
    assert servers_under(redis_dir, "redis-server") == []
