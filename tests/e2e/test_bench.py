"""scripts/bench end to end: a 10k-record passthrough run prints its table.

Only the plain confluent-kafka loop and millstream run (``--contenders plain,millstream``),
so the test never downloads Quix Streams or faust; ``--no-docs`` leaves
docs/benchmarks.md alone; two rounds (``--repeat=2``) and a 3 s latency phase keep the
run well under two minutes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTENDERS = {"plain confluent-kafka loop", "millstream"}


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The rows of the rich table, by contender label: [scenario, label, records/s, ...]."""
    rows: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) > 2 and cells[0] == "passthrough":
            rows[cells[1]] = cells
    return rows


def records_per_second(cell: str) -> float:
    """The median records/s at the start of a cell like ``96,846 (2 runs: 70k-98k)``."""
    try:
        return float(cell.split()[0].replace(",", ""))
    except (IndexError, ValueError):
        return 0.0


@pytest.mark.timeout(180)
def test_bench_passthrough_prints_a_row_per_contender(bootstrap_servers: str) -> None:
    command = [
        str(ROOT / "scripts" / "bench"),
        "passthrough",
        "--records=10000",
        "--contenders=plain,millstream",
        "--latency-seconds=3",
        "--repeat=2",
        "--no-docs",
    ]
    env = {**os.environ, "MILLSTREAM_BOOTSTRAP_SERVERS": bootstrap_servers}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=170, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = table_rows(done.stdout)
    assert set(rows) == CONTENDERS, done.stdout
    for label, cells in rows.items():
        assert records_per_second(cells[2]) > 0, f"{label}: {cells}\n{done.stderr[-3000:]}"
        assert "(2 runs: " in cells[2], f"{label} ran once: {cells}"
