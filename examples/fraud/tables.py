"""The fraud detectors' PostgreSQL tables, and the sink that makes sure they exist.

Both tables are upserted by transaction id, so a transaction has one row however
often a replay after a crash writes it. Each has a timestamp PostgreSQL fills when
the row is first inserted (``clock_timestamp()``: the moment of the insert, not of
the transaction's start) and an upsert leaves alone: the sink never writes it, and
``ON CONFLICT DO UPDATE`` sets only the columns written.
"""

from __future__ import annotations

import psycopg

from millstream.sinks import PostgresSink, SinkContext

_COLUMNS = """
    transaction_id text PRIMARY KEY,
    card_id text,
    merchant_id text,
    country text,
    amount double precision,
    event_time bigint,
    decision text,
    reasons jsonb,
    score double precision,
    zscore double precision,
    velocity_1m bigint,
    velocity_10m bigint
"""
DDL = {
    "scores": f"CREATE TABLE IF NOT EXISTS scores ({_COLUMNS},"
    " scored_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    "alerts": f"CREATE TABLE IF NOT EXISTS alerts ({_COLUMNS},"
    " written_at timestamptz NOT NULL DEFAULT clock_timestamp())",
}
#: Workers starting together take this advisory lock, so one of them creates the tables.
_LOCK = 0x66726175


def ensure_tables(dsn: str) -> None:
    """Create the ``scores`` and ``alerts`` tables when missing.

    Raises:
        psycopg.Error: the server cannot be reached or refuses.
    """
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        for statement in DDL.values():
            conn.execute(statement)


class FraudTableSink(PostgresSink):
    """:class:`~millstream.sinks.PostgresSink` upserting by ``transaction_id`` into one
    of :data:`DDL`'s tables, which it creates (with their insert timestamps) on open."""

    def __init__(self, dsn: str, table: str) -> None:
        if table not in DDL:
            raise ValueError(f"no fraud table {table!r}; one of {sorted(DDL)}")
        super().__init__(dsn, table, key=["transaction_id"], create=False)
        self._dsn = dsn
        self._ready = False

    def open(self, context: SinkContext) -> None:
        super().open(context)
        self._ensure()

    def flush(self) -> None:
        if not self._ready:
            self._ensure()
        super().flush()

    def _ensure(self) -> None:
        try:
            ensure_tables(self._dsn)
            self._ready = True
        except psycopg.OperationalError:
            # A server that is down: the flush meets the same outage and reports it as
            # backpressure, as any PostgresSink does; the tables are made after it.
            pass
