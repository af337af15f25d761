"""Reading back what FileSink (sinks/files.py) wrote, as a reader does: the files the
documented glob finds (never the temporary ones), JSON lines line by line, Parquet in
one DuckDB scan; each file checked to be named after its first offset."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import duckdb
import orjson


def visible(directory: Path, fmt: str) -> list[str]:
    """The files a reader finds with the documented glob, ``**/*.{jsonl,parquet}``."""
    return sorted(glob.glob(f"{directory}/**/*.{fmt}", recursive=True))


def temporary_files(directory: Path) -> list[str]:
    """Files being written (or left by a writer that died): the glob never finds them."""
    return [n for _d, _s, names in os.walk(directory) for n in names if n.endswith(".tmp")]


def read_rows(directory: Path, fmt: str) -> list[dict[str, Any]]:
    """Every row of the visible files, in (partition, offset) order; the rows carry the
    ``_partition`` and ``_offset`` metadata columns, by which each file is checked to be
    named after its first offset and to lie in its partition's directory."""
    if fmt == "parquet":
        return read_parquet_with_duckdb(directory)
    rows: list[dict[str, Any]] = []
    for path in visible(directory, fmt):
        with open(path, "rb") as handle:
            found = [orjson.loads(line) for line in handle]
        assert found, f"{path} is empty"
        check_name(path, found[0]["_partition"], min(row["_offset"] for row in found))
        rows.extend(found)
    return sorted(rows, key=lambda row: (row["_partition"], row["_offset"]))


def read_parquet_with_duckdb(directory: Path) -> list[dict[str, Any]]:
    """The visible Parquet files as a reader queries them: one DuckDB scan of the glob."""
    scan = f"read_parquet('{directory}/**/*.parquet', filename = true)"
    query = f"SELECT filename, any_value(_partition), min(_offset) FROM {scan} GROUP BY 1"
    files = duckdb.sql(query).fetchall()
    assert len(files) == len(visible(directory, "parquet"))
    for path, partition, first in files:
        check_name(path, partition, first)
    rows = duckdb.sql(f"SELECT * EXCLUDE (filename) FROM {scan} ORDER BY _partition, _offset")
    found: list[dict[str, Any]] = rows.to_arrow_table().to_pylist()
    return found


def check_name(path: str, partition: int, first_offset: int) -> None:
    assert int(Path(path).stem) == first_offset, f"{path} does not begin at {first_offset}"
    assert Path(path).parent.name == str(partition), f"{path} is not in partition {partition}"
