"""PostgresSink in a worker, against the real cluster and Debian's PostgreSQL: records
from Kafka end up in the table exactly (compared row by row with the input topic, where
each came from included), across a server outage that the worker rides out, and the
rows PostgreSQL refuses reach the app's dead-letter topic with the reason."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest
from postgres_support import (
    PostgresServer,
    execute,
    payment,
    payment_row,
    payment_rows,
    query,
    row_count,
    scratch_table,
)
from support import Names, ThreadedWorker, consume_all, produce, record_count, wait_for

from millstream import App
from millstream.config import Settings
from millstream.sinks import PostgresSink

PARTITIONS = 3


@pytest.fixture
def table(postgres: PostgresServer) -> Iterator[str]:
    with scratch_table(postgres) as name:
        yield name


@pytest.fixture
def input_partitions() -> int:
    return PARTITIONS


@contextmanager
def worker_of(app: App) -> Iterator[ThreadedWorker]:
    """A worker of ``app`` in a thread, stopped at the end even when the test failed."""
    worker = ThreadedWorker(app)
    try:
        yield worker
    finally:
        if worker.thread.is_alive():
            worker.worker.stop()
            worker.thread.join(60)


def sinking_app(names: Names, bootstrap: str, sink: PostgresSink) -> App:
    app = App(names.app, bootstrap_servers=bootstrap, commit_interval=0.2)
    app.stream(app.topic(names.source, partitions=PARTITIONS)).sink(sink)
    return app


def produce_payments(settings: Settings, topic: str, ids: range) -> None:
    produce(settings, topic, ((f"k{i}", orjson.dumps(payment(i))) for i in ids))


def assert_table_is_the_input(dsn: str, table: str, settings: Settings, topic: str) -> None:
    """The table holds every record of ``topic`` once, where it came from included."""
    consumed = consume_all(settings, topic)
    rows = payment_rows(dsn, table)
    assert len(rows) == len(consumed)
    expected = (payment_row(c.json(), topic, c.partition, c.offset) for c in consumed)
    assert sorted(rows) == sorted(expected)


def test_a_worker_writes_200k_records_from_kafka_into_the_table_exactly(
    postgres: PostgresServer, table: str, names: Names, settings: Settings, bootstrap_servers: str
) -> None:
    count = 200_000
    app = sinking_app(names, bootstrap_servers, PostgresSink(postgres.dsn, table))
    with worker_of(app) as worker:
        started = time.perf_counter()
        produce_payments(settings, names.source, range(count))

        def written() -> int:
            worker.running()
            return row_count(postgres.dsn, table)

        wait_for(lambda: written() >= count, 240, f"{count} rows", observed=lambda: f"{written()}")
        print(f"end to end: {count / (time.perf_counter() - started):,.0f} records/s")
        stats = worker.stop()
    assert_table_is_the_input(postgres.dsn, table, settings, names.source)
    assert stats.dead_letters == 0


#: How long PostgreSQL is down in the outage test, in seconds.
OUTAGE = 30


def test_a_worker_rides_out_a_postgresql_outage_and_the_table_is_the_input(
    postgres: PostgresServer, table: str, names: Names, settings: Settings, bootstrap_servers: str
) -> None:
    count = 20_000
    app = sinking_app(names, bootstrap_servers, PostgresSink(postgres.dsn, table))
    produce_payments(settings, names.source, range(count // 2))
    with worker_of(app) as worker:

        def written() -> int:
            worker.running()
            return row_count(postgres.dsn, table)

        wait_for(lambda: written() >= count // 2, 60, "the first half", observed=written)
        postgres.stop()
        stopped = time.monotonic()
        produce_payments(settings, names.source, range(count // 2, count))
        # PostgreSQL stays down for OUTAGE seconds; the worker must live through them.
        wait_for(
            lambda: (
                worker.running()
                and worker.worker.stats.sink_pauses >= 2
                and time.monotonic() - stopped >= OUTAGE
            ),
            OUTAGE + 30,
            f"the worker to meet the outage and live through {OUTAGE} s of it",
        )
        postgres.start()
        wait_for(lambda: written() >= count, 120, f"{count} rows", observed=lambda: f"{written()}")
        stats = worker.stop()
    assert_table_is_the_input(postgres.dsn, table, settings, names.source)
    assert stats.sink_pauses >= 2


def test_a_worker_sends_the_rows_postgresql_refuses_to_the_dead_letter_topic(
    postgres: PostgresServer, table: str, names: Names, settings: Settings, bootstrap_servers: str
) -> None:
    execute(
        postgres.dsn,
        f"CREATE TABLE {table} (id bigint, amount double precision CHECK (amount >= 0),"
        " _topic text, _partition int, _offset bigint, UNIQUE (_topic, _partition, _offset))",
    )
    app = sinking_app(names, bootstrap_servers, PostgresSink(postgres.dsn, table, create=False))
    negative = {13, 400, 401, 999}
    values = [{"id": i, "amount": -1.0 if i in negative else i / 2} for i in range(1000)]
    with worker_of(app) as worker:
        produce(settings, names.source, ((f"k{v['id']}", orjson.dumps(v)) for v in values))

        def written() -> int:
            worker.running()
            return row_count(postgres.dsn, table)

        wait_for(lambda: written() >= 996, 120, "996 rows", observed=lambda: f"{written()}")
        wait_for(lambda: record_count(settings, names.dlq) >= len(negative), 60, "4 dead letters")
        stats = worker.stop()
    dead = consume_all(settings, names.dlq, count=len(negative), timeout=60)
    assert sorted(orjson.loads(d.value or b"")["id"] for d in dead) == sorted(negative)
    for letter in dead:
        assert letter.headers["millstream.error.type"] == b"psycopg.errors.CheckViolation"
        assert letter.headers["millstream.error.step"] == b"sink"
        assert b"violates check constraint" in letter.headers["millstream.error"]
    good = sorted((v["id"], v["amount"]) for v in values if v["id"] not in negative)
    assert query(postgres.dsn, f"SELECT id, amount FROM {table} ORDER BY id") == good
    assert stats.dead_letters == len(negative)
