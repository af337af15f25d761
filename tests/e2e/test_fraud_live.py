"""The live fraud demo under a worker crash: 60 s at 2,000 transactions/s, two workers,
one killed with SIGKILL halfway.

It runs ``python -m examples.fraud.live`` (what ``scripts/demo`` runs) against a
private 1-node cluster rendered from config/kafka/server.properties.template, whose
``group.consumer.min.session.timeout.ms`` lets the demo's group take a 600 ms session
timeout (a cluster with the old 3 s minimum left the killed worker's partitions idle
long enough to push alert p99 near 4 s), and a PostgreSQL server of the test's own.
Then it checks, from Kafka and PostgreSQL itself rather than the demo's summary:

- every published transaction has exactly one row in ``scores``, and no other rows;
- alert latency (the alert's first insert in PostgreSQL minus the transaction's event
  time, the wall clock when it was made) has p99 under 2 s;
- precision and recall above 85% for every fraud pattern.

About a minute and a half to two: the cluster starts in ~15 s, the demo's warm-up
and stream take ~75 s, reading the labels back and the checks a few seconds. The
latency bound needs the two workers to keep up with 2,000 transactions/s: on a
2-core machine busy with other work (load average above 10) they do not, and p99
goes past 2 s (docs/fraud-demo.md, "Measured").
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import orjson
import psycopg
import pytest
from support import reserve_base_port

from examples.fraud.live_report import read_labels
from millstream.config import Settings, load_settings
from millstream.dev import LocalCluster
from millstream.dev.postgres import PostgresServer, running_postgres

ROOT = Path(__file__).resolve().parents[2]
RATE = 2000
SECONDS = 60
KILL_AFTER = 30
P99_BOUND_MS = 2000.0
QUALITY = 0.85


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    local_dir = tmp_path_factory.mktemp("fraud-cluster")
    with ExitStack() as reservations:
        port = reserve_base_port(1, reservations)
        cluster = LocalCluster(load_settings(local_dir=local_dir, dev_port=port))
        try:
            yield load_settings(bootstrap_servers=cluster.up(1))
        finally:
            cluster.down(wipe=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    # A directory of its own: the integration tests' session server, in the same
    # process, is .local/postgres-<pid>.
    with running_postgres(ROOT / ".local" / "fraud-e2e") as server:
        yield server


def query(dsn: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(statement).fetchall()  # type: ignore[arg-type]


@pytest.mark.timeout(420)
def test_live_demo_survives_a_killed_worker(
    cluster: Settings, postgres: PostgresServer, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "examples.fraud.live", "--rate", str(RATE)]
    command += ["--seconds", str(SECONDS), "--kill-one-after", str(KILL_AFTER)]
    summary_path = tmp_path / "summary.json"
    command += ["--dsn", postgres.dsn, "--keep", "--no-dashboard"]
    command += ["--summary-json", str(summary_path)]
    env = {**os.environ, "MILLSTREAM_BOOTSTRAP_SERVERS": cluster.bootstrap_servers}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=360, check=False
    )
    (tmp_path / "demo.out").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "kill -9 worker-0" in done.stdout

    summary = orjson.loads(summary_path.read_bytes())
    board = read_labels(cluster, summary["transactions_topic"])
    assert len(board.labels) >= RATE * SECONDS * 0.9, "the generator fell far behind its rate"

    # Every transaction scored, once.
    rows = query(postgres.dsn, "SELECT transaction_id FROM scores")
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(board.labels), (
        f"{len(set(board.labels) - set(ids))} transactions unscored, "
        f"{len(set(ids) - set(board.labels))} rows of no transaction"
    )

    # Alert latency and precision/recall per pattern, all printed before any is judged.
    [(p50, p99, alerts)] = query(
        postgres.dsn,
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), count(*) FROM"
        " (SELECT extract(epoch FROM written_at) * 1000 - event_time AS ms FROM alerts) t",
    )
    print(f"alerts {alerts}, latency p50 {p50:.0f} ms, p99 {p99:.0f} ms")  # type: ignore[str-format]
    for tx_id, reasons in query(postgres.dsn, "SELECT transaction_id, reasons FROM alerts"):
        board.add_alert(str(tx_id), reasons)  # type: ignore[arg-type]
    scores = board.scores()
    for score in scores:
        print(f"{score}: recall {score.recall}, precision {score.precision}")
    for score in scores:
        assert score.fraud > 0, score
        assert score.recall is not None and score.recall > QUALITY, score
        assert score.precision is not None and score.precision > QUALITY, score
    assert float(p99) < P99_BOUND_MS, f"alert latency p99 {p99:.0f} ms"  # type: ignore[arg-type]
