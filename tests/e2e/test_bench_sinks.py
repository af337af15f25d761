"""scripts/bench sinks end to end: tiny counts print a row per framework and destination
(millstream and Quix Streams into a PostgreSQL table appended to, one upserted, and
Parquet files) with a rate and the destination's check, and the PostgreSQL server the
run started is gone afterwards, its data removed and its log kept.

The first run on a machine installs Quix Streams with its PostgreSQL and Parquet extras
into .local/bench/quix and, when missing, Debian's postgresql; after that the run
takes under a minute and a half. ``--no-docs`` leaves docs/benchmarks.md alone.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from bench_support import number, servers_under, table_rows

ROOT = Path(__file__).resolve().parents[2]
RECORDS = 3000
KEYS = 500
CONTENDERS = {
    "millstream PostgreSQL append": f"{RECORDS:,} rows, {RECORDS:,} ids",
    "Quix Streams PostgreSQL append": f"{RECORDS:,} rows, {RECORDS:,} ids",
    "millstream PostgreSQL upsert": f"{KEYS:,} rows of {KEYS:,} keys, their last records",
    "Quix Streams PostgreSQL upsert": f"{KEYS:,} rows of {KEYS:,} keys, their last records",
    "millstream Parquet files": f"{RECORDS:,} rows, {RECORDS:,} ids",
    "Quix Streams Parquet files": f"{RECORDS:,} rows, {RECORDS:,} ids",
}


@pytest.mark.timeout(400)
def test_bench_sinks_prints_a_row_per_destination_and_stops_postgres(
    bootstrap_servers: str,
) -> None:
    command = [
        str(ROOT / "scripts" / "bench"),
        "sinks",
        f"--sink-records={RECORDS}",
        f"--keys={KEYS}",
        "--partitions=4",
        "--repeat=1",
        "--contenders=millstream,quix",
        "--no-docs",
    ]
    env = {**os.environ, "MILLSTREAM_BOOTSTRAP_SERVERS": bootstrap_servers}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=380, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = table_rows(done.stdout, "sinks")
    assert set(rows) == set(CONTENDERS), done.stdout
    for label, cells in rows.items():
        assert number(cells[2]) > 0, f"{label}: {cells}\n{done.stderr[-3000:]}"
        assert CONTENDERS[label] in cells[9], f"{label}: {cells}"
    run_dir = re.search(r"logs and results.json: (\S+)", done.stderr)
    assert run_dir, done.stderr[-3000:]
    run = Path(run_dir.group(1))
    postgres_dir = ROOT / ".local" / "bench" / "postgres" / run.name
    assert servers_under(postgres_dir, "postgres") == []
    assert not (postgres_dir / "data").exists()
    assert "database system is ready" in (run / "postgres.log").read_text()
