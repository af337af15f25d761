"""FileSink (sinks/files.py) alone, on a real file system: the files hold exactly the
records written (JSON lines read back line by line, Parquet read back with DuckDB),
nothing is visible before the checkpoint's flush, a replay after a crash rewrites the
same files without doubling a record, and a file system that refuses writes is
backpressure that loses nothing."""

from __future__ import annotations

import contextlib
import resource
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from file_sink_support import read_rows, temporary_files, visible

from millstream.config import load_settings
from millstream.errors import ConfigurationError, SinkBackpressure
from millstream.sinks import FileSink, SinkContext, SinkRecord
from millstream.sinks.files import WRITER_MARKER

FORMATS = ["jsonl", "parquet"]
TOPIC = "orders"


def order(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "customer": f"c-{i % 97}",
        "amount": i * 0.37 - 1000.5,
        "paid": i % 3 == 0,
        "note": None if i % 5 else f"note é {i}",
        "items": [f"sku-{i % 11}", f"sku-{i % 13}"],
    }


def make_records(count: int, partitions: int = 4) -> list[SinkRecord]:
    """``count`` orders spread over ``partitions``, offsets counting up per partition."""
    return [
        SinkRecord(f"k{i}", order(i), 1_767_225_600_000 + i, TOPIC, i % partitions, i // partitions)
        for i in range(count)
    ]


def expected_rows(records: list[SinkRecord]) -> list[dict[str, Any]]:
    rows = [{**r.value, "_partition": r.partition, "_offset": r.offset} for r in records]
    return sorted(rows, key=lambda row: (row["_partition"], row["_offset"]))


def feed(
    sink: FileSink, records: list[SinkRecord], *, checkpoint_every: int, batch: int = 500
) -> dict[int, int]:
    """Write ``records`` as a worker does: runs of ``batch`` records of one partition,
    partitions taking turns, a flush every ``checkpoint_every`` records and at the end.
    Returns, per partition, the offset the flushes covered up to (the commit they allow)."""
    by_partition: dict[int, list[SinkRecord]] = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(record)
    written, last = 0, {p: run[0].offset for p, run in by_partition.items()}
    for start in range(0, max(len(run) for run in by_partition.values()), batch):
        for p, run in by_partition.items():
            if run[start : start + batch]:
                sink.write(run[start : start + batch])
                written += len(run[start : start + batch])
                last[p] = run[min(start + batch, len(run)) - 1].offset + 1
            if written >= checkpoint_every:
                sink.flush()
                written = 0
    sink.flush()
    return last


class DeadLetters(list[tuple[SinkRecord, BaseException]]):
    """What a worker's context.dead_letter would have sent to the dead-letter topic."""

    def context(self) -> SinkContext:
        return SinkContext("test", load_settings(), None, lambda r, e: self.append((r, e)))


def sink(directory: Path, fmt: str, **options: Any) -> FileSink:
    options.setdefault("metadata", ("partition", "offset"))
    return FileSink(directory, format=fmt, **options)


@pytest.mark.parametrize("fmt", FORMATS)
def test_200k_records_come_back_exactly(tmp_path: Path, fmt: str) -> None:
    records = make_records(200_000)
    files = sink(tmp_path, fmt, roll_every=7_000)
    feed(files, records, checkpoint_every=20_000)

    assert read_rows(tmp_path, fmt) == expected_rows(records)
    assert temporary_files(tmp_path) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_replay_rewrites_the_same_files(tmp_path: Path, fmt: str) -> None:
    records = make_records(30_000)
    feed(sink(tmp_path, fmt, roll_every=1_500), records, checkpoint_every=4_000)
    before = {p: Path(p).read_bytes() for p in visible(tmp_path, fmt)}

    feed(sink(tmp_path, fmt, roll_every=1_500), records, checkpoint_every=4_000)

    assert {p: Path(p).read_bytes() for p in visible(tmp_path, fmt)} == before
    assert read_rows(tmp_path, fmt) == expected_rows(records)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_crash_after_the_commit_leaves_nothing_doubled(tmp_path: Path, fmt: str) -> None:
    """The first writer's last commit covers part of what it wrote; it publishes more
    (flushes whose commits never happened), writes a rolled file under a temporary
    name, and dies. The next one replays from the commit, cut differently."""
    records = make_records(50_000)
    first = sink(tmp_path, fmt, roll_every=1_500)
    committed = feed(first, records[:20_000], checkpoint_every=6_000)
    feed(first, records[20_000:36_000], checkpoint_every=5_000)
    first.write([r for r in records[36_000:] if r.partition == 0])
    assert temporary_files(tmp_path), "the first writer left no temporary file"
    del first  # kill -9: no close, no discard

    replay = [r for r in records if r.offset >= committed[r.partition]]
    feed(sink(tmp_path, fmt, roll_every=2_500), replay, checkpoint_every=3_000)

    assert read_rows(tmp_path, fmt) == expected_rows(records)
    assert temporary_files(tmp_path) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_nothing_is_visible_before_the_flush(tmp_path: Path, fmt: str) -> None:
    files = sink(tmp_path, fmt, roll_every=1_000)
    records = make_records(10_000, partitions=2)
    files.write(records[:5_000])
    files.write(records[5_000:])

    assert visible(tmp_path, fmt) == []
    assert len(temporary_files(tmp_path)) == 10  # rolled, waiting for the checkpoint
    files.flush()
    assert len(visible(tmp_path, fmt)) == 10
    assert temporary_files(tmp_path) == []
    assert read_rows(tmp_path, fmt) == expected_rows(records)


def test_a_blocked_directory_is_backpressure_and_a_later_flush_writes(tmp_path: Path) -> None:
    records = make_records(6_000, partitions=2)
    blocker = tmp_path / TOPIC
    blocker.write_text("a file where the sink needs a directory")
    files = sink(tmp_path, "jsonl", roll_every=1_000)

    with pytest.raises(SinkBackpressure) as raised:
        files.write(records)
    assert raised.value.retry_after > 0
    with pytest.raises(SinkBackpressure):
        files.flush()

    blocker.unlink()
    files.flush()
    assert read_rows(tmp_path, "jsonl") == expected_rows(records)


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes of a file fail with EFBIG, as a full disk fails them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_is_backpressure_and_loses_nothing(tmp_path: Path, fmt: str) -> None:
    records = make_records(40_000, partitions=2)
    files = sink(tmp_path, fmt, roll_every=15_000)
    with file_size_limit(64 * 1024):
        with pytest.raises(SinkBackpressure):
            files.write(records)
        with pytest.raises(SinkBackpressure):
            files.flush()
        assert visible(tmp_path, fmt) == []
        assert temporary_files(tmp_path) == []  # the partial file went with the error

    files.flush()
    assert read_rows(tmp_path, fmt) == expected_rows(records)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_partition_back_from_another_writer_drops_its_uncommitted_files(
    tmp_path: Path, fmt: str
) -> None:
    """This writer had the partition up to 1,000; another took it, committed 2,000,
    published up to 3,000 and died. This writer resumes at 2,000: the other's files
    from 2,000 on go (the writer marker tells it the partition was not its own)."""
    records = make_records(4_000, partitions=1)
    mine = sink(tmp_path, fmt, roll_every=700)
    feed(mine, records[:1_000], checkpoint_every=1_000)
    other = sink(tmp_path, fmt, roll_every=300)
    feed(other, records[1_000:2_000], checkpoint_every=1_000)
    feed(other, records[2_000:3_000], checkpoint_every=1_000)

    feed(mine, records[2_000:], checkpoint_every=1_000)

    assert read_rows(tmp_path, fmt) == expected_rows(records)
    assert (tmp_path / TOPIC / "0" / WRITER_MARKER).exists()


def test_a_rewind_without_a_crash_drops_the_published_files_past_it(tmp_path: Path) -> None:
    records = make_records(5_000, partitions=1)
    files = sink(tmp_path, "jsonl", roll_every=400)
    feed(files, records, checkpoint_every=1_000)
    feed(files, records[2_000:], checkpoint_every=700)  # the commit at 2,000 held

    assert read_rows(tmp_path, "jsonl") == expected_rows(records)


def test_partition_by_names_sub_directories(tmp_path: Path) -> None:
    records = make_records(9_000, partitions=3)
    files = FileSink(tmp_path, partition_by=lambda v: f"customer={v['customer'][-1]}")
    feed(files, records, checkpoint_every=2_000)
    feed(
        FileSink(tmp_path, partition_by=lambda v: f"customer={v['customer'][-1]}"),
        records,
        checkpoint_every=3_000,
    )

    found: list[dict[str, Any]] = []
    for path in visible(tmp_path, "jsonl"):
        rows = [orjson.loads(line) for line in Path(path).read_bytes().splitlines()]
        assert {f"customer={row['customer'][-1]}" for row in rows} == {Path(path).parent.name}
        found.extend(rows)
    assert sorted(found, key=lambda v: v["id"]) == [r.value for r in records]


def test_records_of_one_offset_stay_in_one_file(tmp_path: Path) -> None:
    """flat_map makes several records of one message: a file never ends among them."""
    records = [
        SinkRecord(None, {"n": n, "i": i}, 0, TOPIC, 0, n) for n in range(300) for i in range(7)
    ]
    files = FileSink(tmp_path, roll_every=10, metadata=("offset",))
    files.write(records)
    files.flush()

    for path in visible(tmp_path, "jsonl"):
        rows = [orjson.loads(line) for line in Path(path).read_bytes().splitlines()]
        assert len(rows) == 14 and rows[0]["i"] == 0 and rows[-1]["i"] == 6


def test_refused_records_go_to_the_dead_letters(tmp_path: Path) -> None:
    letters = DeadLetters()
    good = make_records(100, partitions=1)
    odd = [
        SinkRecord(None, {"id": "x", "raw": b"\x00"}, 0, TOPIC, 0, 100),  # bytes: not JSON
        SinkRecord(None, [1, 2], 0, TOPIC, 0, 101),  # no object for the metadata columns
    ]
    files = sink(tmp_path, "jsonl")
    files.open(letters.context())
    files.write(good + odd)
    files.flush()

    assert sorted((r.offset, type(e).__name__) for r, e in letters) == [
        (100, "SerializationError"),
        (101, "SerializationError"),
    ]
    assert read_rows(tmp_path, "jsonl") == expected_rows(good)


def test_parquet_refuses_what_its_schema_cannot_hold(tmp_path: Path) -> None:
    letters = DeadLetters()
    schema = {"id": "int64", "customer": "string"}
    rows = [
        {"id": 1, "customer": "a"},
        {"id": "two", "customer": "b"},  # wrong type
        {"id": 3, "customer": "c", "extra": True},  # a field the schema lacks
        {"id": 4, "customer": None},
    ]
    files = FileSink(tmp_path, format="parquet", schema=schema, metadata=("offset",))
    files.open(letters.context())
    files.write([SinkRecord(None, row, 0, TOPIC, 0, i) for i, row in enumerate(rows)])
    files.flush()

    assert [r.offset for r, _e in letters] == [1, 2]
    assert "extra" in str(letters[1][1])
    result = duckdb.sql(
        f"SELECT id, customer, _offset FROM read_parquet('{tmp_path}/**/*.parquet')"
    )
    assert result.fetchall() == [(1, "a", 0), (4, None, 3)]


def test_parquet_infers_its_schema_from_the_first_batch(tmp_path: Path) -> None:
    letters = DeadLetters()
    files = FileSink(tmp_path, format="parquet")
    files.open(letters.context())
    first = [{"id": 1, "note": None}, {"id": 2, "note": "x", "tags": ["a"]}]
    later = [{"id": "three"}, {"id": 4, "tags": []}]
    records = [SinkRecord(None, row, 0, TOPIC, 0, i) for i, row in enumerate(first + later)]
    files.write(records[:2])
    files.write(records[2:])
    files.flush()

    assert [r.offset for r, _e in letters] == [2]
    result = duckdb.sql(f"SELECT * FROM read_parquet('{tmp_path}/**/*.parquet') ORDER BY id")
    assert result.columns == ["id", "note", "tags"]
    assert result.fetchall() == [(1, None, None), (2, "x", ["a"]), (4, None, [])]


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ConfigurationError, match=r"millstream\[parquet\]"):
        FileSink(tmp_path, format="parquet")
    FileSink(tmp_path, format="jsonl")  # JSON lines need no pyarrow
