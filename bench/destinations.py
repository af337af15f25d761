"""What a sink left behind: the harness's checks of a PostgreSQL table or a Parquet directory.

After each run of the sinks scenario the destination must hold exactly what the input
says: every record once (append, Parquet: as many rows as records, as many distinct
``id`` values), or one row per key holding that key's last record (upsert: as many
rows as distinct keys, and the ``id`` values summing to the sum of each key's last
``id``, so an update that lost to an older record shows). Runs in millstream's
virtualenv: psycopg 3 and pyarrow, the ``postgres`` and ``parquet`` extras.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
from psycopg import sql

#: Bound on one check query, in ms.
STATEMENT_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class Expected:
    """What the input holds: record ``i`` has ``id`` i and key ``k<i mod keys>``."""

    records: int
    keys: int

    @property
    def distinct_keys(self) -> int:
        return min(self.keys, self.records)

    @property
    def last_ids_sum(self) -> int:
        """The sum over keys of the ``id`` of the key's last record."""
        n, k = self.records, self.keys
        return sum(j + k * ((n - 1 - j) // k) for j in range(min(k, n)))


@dataclass(frozen=True)
class Check:
    """Whether a destination holds what it should, and what it held."""

    ok: bool
    text: str


def check_table(dsn: str, table: str, upsert: bool, expected: Expected) -> Check:
    """Count the rows of ``table`` (``upsert``: and their keys and ``id`` sum)."""
    query = sql.SQL(
        "SELECT count(*), count(DISTINCT id), count(DISTINCT key), coalesce(sum(id), 0) FROM {}"
    ).format(sql.Identifier(table))
    try:
        with psycopg.connect(dsn, options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}") as conn:
            row = conn.execute(query).fetchone()
    except psycopg.Error as exc:
        return Check(False, f"table {table}: {str(exc).strip().splitlines()[0]}")
    assert row is not None
    rows, ids, keys, id_sum = (int(x) for x in row)
    if upsert:
        ok = rows == keys == expected.distinct_keys and id_sum == expected.last_ids_sum
        last = "their last records" if id_sum == expected.last_ids_sum else "NOT the last records"
        return Check(ok, f"{rows:,} rows of {keys:,} keys, {last}")
    ok = rows == ids == expected.records
    return Check(ok, f"{rows:,} rows, {ids:,} ids")


def parquet_files(directory: Path) -> list[Path]:
    """The visible ``.parquet`` files under ``directory`` (hidden ones, such as files
    still being written under a temporary name, are not counted)."""
    return sorted(
        path
        for path in directory.rglob("*.parquet")
        if not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


def check_parquet(directory: Path, expected: Expected) -> Check:
    """Count the rows and distinct ``id`` values of the Parquet files under ``directory``."""
    files = parquet_files(directory) if directory.exists() else []
    if not files:
        return Check(False, f"no Parquet files under {directory}")
    try:
        ids = pa.chunked_array(
            [pq.ParquetFile(f).read(columns=["id"]).column("id").combine_chunks() for f in files]
        )
    except (OSError, KeyError, pa.ArrowException) as exc:
        return Check(False, f"unreadable Parquet file: {exc}")
    rows, distinct = len(ids), pc.count_distinct(ids).as_py()
    ok = rows == distinct == expected.records
    return Check(ok, f"{rows:,} rows, {distinct:,} ids, {len(files):,} files")


def drop_table(dsn: str, table: str) -> None:
    """Drop ``table`` if it exists (a checked run's rows, to keep the server small)."""
    query = sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table))
    with psycopg.connect(dsn, options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}") as conn:
        conn.execute(query)
