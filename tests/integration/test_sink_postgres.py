"""PostgresSink against Debian's PostgreSQL (tests/postgres_support.py), without a
worker: the table's content is compared with the input row by row, not counted, after
batches, replays, outages and refused rows. With a worker: test_sink_postgres_worker.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from postgres_support import (
    PostgresServer,
    execute,
    payment,
    payment_row,
    payment_rows,
    query,
    scratch_table,
)

from millstream.config import Settings
from millstream.errors import ConfigurationError, SerializationError, SinkBackpressure
from millstream.kafka import Producer
from millstream.sinks import PostgresSink, SinkContext, SinkRecord

PARTITIONS = 3
DeadLetters = list[tuple[SinkRecord, BaseException]]
Opener = Callable[[PostgresSink], PostgresSink]


def payments(count: int) -> list[SinkRecord]:
    """Records of the first ``count`` payments, round-robin over the partitions."""
    return [
        SinkRecord(None, payment(i), 0, "payments", i % PARTITIONS, i // PARTITIONS)
        for i in range(count)
    ]


def expected_rows(records: Sequence[SinkRecord]) -> list[tuple[Any, ...]]:
    rows = [payment_row(r.value, r.topic, r.partition, r.offset) for r in records]
    return sorted(rows, key=lambda row: (row[-3], row[-2], row[-1]))


def column_types(dsn: str, table: str) -> dict[str, str]:
    return dict(
        query(
            dsn,
            "SELECT column_name, data_type FROM information_schema.columns"
            f" WHERE table_name = '{table}' ORDER BY ordinal_position",
        )
    )


def write_in_batches(
    sink: PostgresSink, records: list[SinkRecord], batch: int = 5000, per_flush: int = 4
) -> float:
    """Write ``batch`` records at a time, flushing every ``per_flush`` batches and at the
    end, as a worker's checkpoints do; returns the seconds it took."""
    started = time.perf_counter()
    for n, begin in enumerate(range(0, len(records), batch), start=1):
        sink.write(records[begin : begin + batch])
        if n % per_flush == 0:
            sink.flush()
    sink.flush()
    return time.perf_counter() - started


@pytest.fixture
def table(postgres: PostgresServer) -> Iterator[str]:
    with scratch_table(postgres) as name:
        yield name


@pytest.fixture
def dead_letters() -> DeadLetters:
    return []


@pytest.fixture
def opened(dead_letters: DeadLetters) -> Opener:
    """Opens a sink as a worker would, its dead letters going to ``dead_letters``."""
    context = SinkContext(
        "test", cast(Settings, None), cast(Producer, None), lambda r, e: dead_letters.append((r, e))
    )

    def open_sink(sink: PostgresSink) -> PostgresSink:
        sink.open(context)
        return sink

    return open_sink


def test_200k_appended_in_batches_are_the_table_and_a_replay_changes_nothing(
    postgres: PostgresServer, table: str, opened: Opener, dead_letters: DeadLetters
) -> None:
    records = payments(200_000)
    sink = opened(PostgresSink(postgres.dsn, table))
    seconds = write_in_batches(sink, records)
    print(f"append: {len(records) / seconds:,.0f} rows/s ({seconds:.2f} s)")
    expected = expected_rows(records)
    assert payment_rows(postgres.dsn, table) == expected

    seconds = write_in_batches(sink, records, batch=7000, per_flush=3)
    print(f"append replay: {len(records) / seconds:,.0f} rows/s ({seconds:.2f} s)")
    assert payment_rows(postgres.dsn, table) == expected
    assert not dead_letters
    sink.close()


def test_upsert_converges_to_the_last_value_per_key(
    postgres: PostgresServer, table: str, opened: Opener
) -> None:
    records = [
        SinkRecord(None, {"account": f"acct-{i % 3000}", "balance": i, "seen": i % 7}, 0, "t", 0, i)
        for i in range(200_000)
    ]
    sink = opened(PostgresSink(postgres.dsn, table, key=["account"]))
    seconds = write_in_batches(sink, records)
    print(f"upsert: {len(records) / seconds:,.0f} rows/s ({seconds:.2f} s)")
    last = {r.value["account"]: (r.value["balance"], r.value["seen"]) for r in records}
    expected = sorted((account, *values) for account, values in last.items())
    select = f"SELECT account, balance, seen FROM {table} ORDER BY account"
    assert query(postgres.dsn, select) == expected

    write_in_batches(sink, records, batch=9000, per_flush=1)  # a replay, cut differently
    assert query(postgres.dsn, select) == expected
    within_one = [
        SinkRecord(None, {"account": "acct-1", "balance": b, "seen": 0}, 0, "t", 0, b)
        for b in (-1, -2, -3)
    ]
    sink.write(within_one)
    sink.flush()
    one = f"SELECT account, balance, seen FROM {table} WHERE account = 'acct-1'"
    assert query(postgres.dsn, one) == [("acct-1", -3, 0)]

    # A flush whose records lack a column leaves it as it was.
    sink.write([SinkRecord(None, {"account": "acct-1", "seen": 99}, 0, "t", 0, 0)])
    sink.flush()
    assert query(postgres.dsn, one) == [("acct-1", -3, 99)]


def test_a_table_created_from_declared_columns(
    postgres: PostgresServer, table: str, opened: Opener
) -> None:
    columns = {"id": "bigint", "at": "timestamptz", "price": "numeric(10,2)", "tags": "jsonb"}
    sink = opened(PostgresSink(postgres.dsn, table, columns=columns))
    value = {"id": 7, "at": "2026-11-30T12:00:00Z", "price": "12.5", "tags": ["a"], "other": 1}
    sink.write([SinkRecord(None, value, 0, "t", 0, 0)])
    sink.flush()
    assert column_types(postgres.dsn, table) == {
        "id": "bigint",
        "at": "timestamp with time zone",
        "price": "numeric",
        "tags": "jsonb",
        "_topic": "text",
        "_partition": "integer",
        "_offset": "bigint",
    }
    assert query(postgres.dsn, f"SELECT id, at, price, tags FROM {table}") == [
        (7, datetime(2026, 11, 30, 12, tzinfo=UTC), Decimal("12.50"), ["a"])
    ]


def test_a_table_created_from_the_first_batch(
    postgres: PostgresServer, table: str, opened: Opener
) -> None:
    values = [
        {"i": 1, "f": 1.5, "b": True, "s": "x", "o": {"a": 1}, "n": 1, "m": 1, "z": None},
        {"i": 2, "f": 2.5, "b": False, "s": "y", "o": [1, 2], "n": 2.5, "m": "two", "z": None},
    ]
    sink = opened(PostgresSink(postgres.dsn, table))
    sink.write([SinkRecord(None, v, 0, "t", 0, n) for n, v in enumerate(values)])
    sink.flush()
    types = column_types(postgres.dsn, table)
    assert {k: types[k] for k in values[0]} == {
        "i": "bigint",
        "f": "double precision",
        "b": "boolean",
        "s": "text",
        "o": "jsonb",
        "n": "double precision",
        "m": "jsonb",
        "z": "text",
    }
    assert query(postgres.dsn, f"SELECT i, f, b, s, o, n, m, z FROM {table} ORDER BY i") == [
        tuple(v.values()) for v in values
    ]

    only = opened(PostgresSink(postgres.dsn, f"{table}_only", columns=["i", "s"]))
    try:
        only.write([SinkRecord(None, v, 0, "t", 0, n) for n, v in enumerate(values)])
        only.flush()
        assert list(column_types(postgres.dsn, f"{table}_only"))[:2] == ["i", "s"]
        assert query(postgres.dsn, f"SELECT i, s FROM {table}_only ORDER BY i") == [
            (1, "x"),
            (2, "y"),
        ]
    finally:
        execute(postgres.dsn, f"DROP TABLE IF EXISTS {table}_only")


def test_a_table_that_does_not_fit_names_the_column_and_keeps_the_batch(
    postgres: PostgresServer, table: str, opened: Opener
) -> None:
    execute(
        postgres.dsn,
        f"CREATE TABLE {table} (id bigint, _topic text, _partition int, _offset bigint,"
        " UNIQUE (_topic, _partition, _offset))",
    )
    sink = opened(PostgresSink(postgres.dsn, table, create=False))
    sink.write([SinkRecord(None, {"id": 1, "amount": 2.5}, 0, "t", 0, 0)])
    with pytest.raises(ConfigurationError, match=f"{table} has no column 'amount'"):
        sink.flush()
    execute(postgres.dsn, f"ALTER TABLE {table} ADD COLUMN amount double precision")
    sink.flush()
    assert query(postgres.dsn, f"SELECT id, amount, _offset FROM {table}") == [(1, 2.5, 0)]

    declared = opened(PostgresSink(postgres.dsn, table, columns=["id", "currency"]))
    declared.write([SinkRecord(None, {"id": 2}, 0, "t", 0, 1)])
    with pytest.raises(ConfigurationError, match="no column 'currency'"):
        declared.flush()
    upsert = opened(PostgresSink(postgres.dsn, table, key=["id"], create=False))
    upsert.write([SinkRecord(None, {"id": 2}, 0, "t", 0, 1)])
    with pytest.raises(ConfigurationError, match="no unique index on id"):
        upsert.flush()
    missing = opened(PostgresSink(postgres.dsn, f"{table}_missing", create=False))
    missing.write([SinkRecord(None, {"id": 2}, 0, "t", 0, 1)])
    with pytest.raises(ConfigurationError, match=f"{table}_missing does not exist"):
        missing.flush()


def test_an_outage_is_backpressure_and_then_every_record_lands_once(
    postgres: PostgresServer, table: str, opened: Opener
) -> None:
    records = payments(30_000)
    sink = opened(PostgresSink(f"{postgres.dsn} application_name={table}", table))
    write_in_batches(sink, records[:10_000])
    postgres.stop()
    sink.write(records[10_000:20_000])
    for _ in range(2):  # still down: still backpressure, the batch still kept
        with pytest.raises(SinkBackpressure, match="cannot take writes") as raised:
            sink.flush()
        assert raised.value.retry_after > 0
    postgres.start()
    sink.flush()
    assert payment_rows(postgres.dsn, table) == expected_rows(records[:20_000])

    # The server ends the sink's session (an administrator, a failover proxy): the next
    # flush finds the connection broken and writes through a new one.
    terminated = query(
        postgres.dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE application_name = '{table}'",
    )
    assert terminated == [(True,)]
    write_in_batches(sink, records[15_000:25_000])  # overlapping the last batch: a replay
    assert payment_rows(postgres.dsn, table) == expected_rows(records[:25_000])

    # The server restarted between two flushes: the same.
    postgres.stop()
    postgres.start()
    write_in_batches(sink, records[25_000:])
    assert payment_rows(postgres.dsn, table) == expected_rows(records)


def test_refused_rows_go_to_the_dead_letters_with_the_reason_and_the_rest_is_written(
    postgres: PostgresServer, table: str, opened: Opener, dead_letters: DeadLetters
) -> None:
    execute(
        postgres.dsn,
        f"CREATE TABLE {table} (id bigint NOT NULL, qty integer, amount double precision"
        " CHECK (amount >= 0), _topic text, _partition int, _offset bigint,"
        " UNIQUE (_topic, _partition, _offset))",
    )
    bad: dict[int, tuple[Any, str]] = {
        17: ({"id": None, "qty": 1, "amount": 1.0}, "NotNullViolation"),
        4242: ({"id": 4242, "qty": 1, "amount": -5.0}, "CheckViolation"),
        4243: ({"id": 4243, "qty": "many", "amount": 1.0}, "InvalidTextRepresentation"),
        9999: ({"id": 9999, "qty": 2**40, "amount": 1.0}, "NumericValueOutOfRange"),
        5000: (["not", "an", "object"], "SerializationError"),
    }
    values = [
        bad[i][0] if i in bad else {"id": i, "qty": i % 9, "amount": i / 4} for i in range(10_000)
    ]
    records = [SinkRecord(None, v, 0, "t", 0, i) for i, v in enumerate(values)]
    sink = opened(PostgresSink(postgres.dsn, table))
    sink.write(records)
    sink.flush()

    refused = {record.offset: type(error).__name__ for record, error in dead_letters}
    assert refused == {i: reason for i, (_, reason) in bad.items()}
    assert all(str(error) for _, error in dead_letters)
    assert isinstance(dict(((r.offset, e) for r, e in dead_letters))[5000], SerializationError)
    good = [(i, v["qty"], v["amount"]) for i, v in enumerate(values) if i not in bad]
    assert query(postgres.dsn, f"SELECT id, qty, amount FROM {table} ORDER BY _offset") == good


def test_a_dsn_that_can_never_work_fails_at_open_naming_the_setting(
    postgres: PostgresServer, opened: Opener
) -> None:
    wrong_database = postgres.dsn.replace("dbname=postgres", "dbname=no_such_db")
    assert wrong_database != postgres.dsn
    with pytest.raises(ConfigurationError, match=r"'dsn'.*no_such_db"):
        opened(PostgresSink(wrong_database, "payments"))
