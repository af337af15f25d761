"""A real PostgreSQL server for the tests, and reading its tables back.

The server itself is :mod:`millstream.dev.postgres` (one per pytest session, in the
sink tests' fixtures); below it: reading tables back, and the payments the sink tests
write. The sink tests talk to the server users run, never to a mock (docs/testing.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from millstream.dev.postgres import (
    START_TIMEOUT,
    PostgresServer,
    free_port,
    postgres_binary,
    running_postgres,
)

__all__ = [
    "START_TIMEOUT",
    "PostgresServer",
    "free_port",
    "postgres_binary",
    "running_postgres",
]


# -- reading tables back -------------------------------------------------------------

#: The columns of an appended payment, in the order :func:`payment_row` gives them.
PAYMENT_COLUMNS = "id, account, amount, settled, details, note, _topic, _partition, _offset"


def payment(i: int) -> dict[str, Any]:
    """The value of the ``i``th payment: every kind of JSON value, None now and then."""
    return {
        "id": i,
        "account": f"acct-{i % 1000}",
        "amount": round(i * 0.37 % 500, 2),
        "settled": i % 3 == 0,
        "details": {"channel": ("web", "pos", "app")[i % 3], "items": [i % 5, i % 7]},
        "note": None if i % 4 else f"note {i}",
    }


def payment_row(value: dict[str, Any], topic: str, partition: int, offset: int) -> tuple[Any, ...]:
    """The row an appended payment becomes: :data:`PAYMENT_COLUMNS`."""
    return (*value.values(), topic, partition, offset)


def payment_rows(dsn: str, table: str) -> list[tuple[Any, ...]]:
    """The payments of ``table`` in (topic, partition, offset) order."""
    return query(dsn, f"SELECT {PAYMENT_COLUMNS} FROM {table} ORDER BY _topic, _partition, _offset")


def query(dsn: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(statement).fetchall()  # type: ignore[arg-type]


def execute(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def row_count(dsn: str, table: str) -> int:
    """The rows of ``table``; 0 while it does not exist."""
    if not query(dsn, f"SELECT to_regclass('{table}') IS NOT NULL")[0][0]:
        return 0
    return int(query(dsn, f"SELECT count(*) FROM {table}")[0][0])


@contextmanager
def scratch_table(server: PostgresServer) -> Iterator[str]:
    """A table name of its own (``t_<hex>``), the table dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    server.ensure_running()
    execute(server.dsn, f"DROP TABLE IF EXISTS {name}")
