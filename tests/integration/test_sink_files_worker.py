"""kill -9 of a worker writing files: the visible files end up holding every record once.

A worker process (tests/integration/apps/file_sink.py) writes 100,000 JSON records of a
3-partition topic into files of 1,000 rows, committing every 0.5 s, slowed down so
that it is killed with SIGKILL while files roll: once a fifth of the records is in
visible files and some file is being written under its temporary name. A new worker
finishes from the last commit. Then the files a reader finds (``**/*.jsonl`` or
``**/*.parquet``; Parquet read with DuckDB) hold exactly the records produced, each
once, each file named after its first offset; no temporary file is among them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from file_sink_support import read_rows, temporary_files, visible
from support import Names, WorkerProcess, committed_offsets, end_offsets, produce_json, wait_for

from millstream.config import Settings

APP = "tests.integration.apps.file_sink:app"
RECORDS = 100_000
PARTITIONS = 3


@pytest.fixture
def input_partitions() -> int:
    return PARTITIONS  # as apps/file_sink.py declares


def order(i: int) -> dict[str, Any]:
    return {"id": i, "customer": f"c-{i % 97}", "amount": i * 0.37 - 5.5, "paid": i % 3 == 0}


def rows_in_files(directory: Path, fmt: str) -> int:
    """Rows in the visible files (Parquet: from the footers)."""
    if fmt == "jsonl":
        return sum(Path(p).read_bytes().count(b"\n") for p in visible(directory, fmt))
    return sum(pq.read_metadata(p).num_rows for p in visible(directory, fmt))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_kill_9_while_files_roll_leaves_every_record_once(
    names: Names, settings: Settings, bootstrap_servers: str, tmp_path: Path, fmt: str
) -> None:
    files, log = tmp_path / "files", tmp_path / "worker.log"
    env = names.env(
        bootstrap_servers,
        tmp_path / "state",
        TEST_FILES=str(files),
        TEST_FORMAT=fmt,
        TEST_ROLL_EVERY="1000",
    )
    produce_json(settings, names.source, ((f"k{i % 101}", order(i)) for i in range(RECORDS)))
    ends = end_offsets(settings, names.source)
    assert sum(ends.values()) == RECORDS

    first = WorkerProcess(APP, {**env, "TEST_SLOW_US": "50"}, log)
    try:
        wait_for(
            lambda: (
                first.running()
                and rows_in_files(files, fmt) >= RECORDS // 5
                and bool(temporary_files(files))
            ),
            180,
            "a fifth of the records in visible files while a file is being written",
            observed=lambda: f"{rows_in_files(files, fmt)} rows, temp {temporary_files(files)}",
        )
    finally:
        first.kill()
    assert rows_in_files(files, fmt) < RECORDS, "the worker was done before it was killed"
    left_over = temporary_files(files)

    second = WorkerProcess(APP, env, log)
    try:
        wait_for(
            lambda: (
                second.running()
                and committed_offsets(settings, names.app, names.source, PARTITIONS) == ends
            ),
            180,
            "the second worker to commit every record",
            observed=lambda: str(committed_offsets(settings, names.app, names.source, PARTITIONS)),
        )
    finally:
        code = second.stop()
    assert code == 0, second.text()[-3000:]

    rows = read_rows(files, fmt)
    assert sorted(row["id"] for row in rows) == list(range(RECORDS))
    by_id = {row["id"]: {k: v for k, v in row.items() if not k.startswith("_")} for row in rows}
    assert by_id == {i: order(i) for i in range(RECORDS)}
    for partition, end in ends.items():
        offsets = [row["_offset"] for row in rows if row["_partition"] == partition]
        assert offsets == list(range(end)), f"partition {partition}: offsets missing or doubled"
    assert not any(path.endswith(".tmp") for path in visible(files, fmt))
    print(f"{fmt}: {len(visible(files, fmt))} files; temporary files left by the kill: {left_over}")
