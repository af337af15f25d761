"""The test driver runs an app's topology without a broker, as a worker would.

Checked against what the README and docs promise of a worker on a broker. The
window steps it runs are checked against the oracle in test_window_steps.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from millstream import App, windows
from millstream.processors.handlers import ProcessorContext, Record
from millstream.sinks import KafkaSink
from millstream.testing import TestDriver

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_stateless_steps_and_outputs() -> None:
    app = App("shop")
    orders = app.topic("orders", partitions=2)
    big = app.topic("big", partitions=2)
    (
        app.stream(orders)
        .filter(lambda o: o["amount"] >= 100)
        .map(lambda o: {"id": o["id"], "cents": o["amount"] * 100})
        .to(big)
    )
    with TestDriver(app, start_ms=START) as driver:
        driver.send(orders, {"id": 1, "amount": 250}, key="c-1")
        driver.send(orders, {"id": 2, "amount": 5}, key="c-2")
        driver.send("orders", {"id": 3, "amount": 100}, key="c-3", timestamp=START + 7)
        out = driver.read(big)
        assert [(r.key, r.value, r.timestamp) for r in out] == [
            ("c-1", {"id": 1, "cents": 25000}, START),
            ("c-3", {"id": 3, "cents": 10000}, START + 7),
        ]
        assert driver.read(big) == []  # only what came since the last read
        assert driver.stats.records_in == 3
        assert driver.stats.records_out == 2
        assert driver.stats.topic_records_in == {"orders": 3}
        assert driver.stats.topic_records_out == {"big": 2}


def test_malformed_input_and_failing_steps_go_to_the_dead_letter_topic() -> None:
    app = App("shop")
    orders = app.topic("orders")
    out = app.topic("out")
    app.stream(orders).map(lambda o: {"per_item": o["amount"] / o["items"]}).to(out)
    with TestDriver(app) as driver:
        driver.send(orders, b"{not json", key="c-1", headers=[("trace", "t-1")])
        driver.send(orders, {"amount": 10, "items": 0}, key="c-2")
        driver.send(orders, {"amount": 10, "items": 4}, key="c-3")
        assert [r.value for r in driver.read(out)] == [{"per_item": 2.5}]
        dead = driver.read("shop-dlq")
        assert [r.value for r in dead] == [b"{not json", b'{"amount":10,"items":0}']
        first, second = (r.headers for r in dead)
        assert first["trace"] == "t-1"
        assert first["millstream.error.step"] == "deserialize(orders)"
        assert first["millstream.source.offset"] == "0"
        assert second["millstream.error.type"] == "builtins.ZeroDivisionError"
        assert second["millstream.error.step"].startswith("map(")
        assert driver.stats.dead_letters == 2


def test_group_by_goes_through_the_repartition_topic_into_a_window() -> None:
    app = App("shop")
    payments = app.topic("payments", partitions=3)
    per_merchant = app.topic("per-merchant")
    (
        app.stream(payments, timestamp=lambda p: p["ts"])
        .group_by(lambda p: p["merchant"], name="by-merchant")
        .window(windows.Tumbling(timedelta(seconds=10)), name="counts")
        .count()
        .to(per_merchant)
    )
    with TestDriver(app) as driver:
        for i, merchant in enumerate(["m-1", "m-2", "m-1", "m-1"]):
            driver.send(payments, {"merchant": merchant, "ts": START + i}, key=f"card-{i}")
        assert driver.read(per_merchant) == []  # the window is still open
        driver.send(payments, {"merchant": "m-1", "ts": START + 10_000}, key="card-9")
        driver.send(payments, {"merchant": "m-2", "ts": START + 10_000}, key="card-9")
        results = {r.key: r.value for r in driver.read(per_merchant)}
        assert results == {
            "m-1": {"start": START, "end": START + 10_000, "value": 3},
            "m-2": {"start": START, "end": START + 10_000, "value": 1},
        }
        assert len(driver.read("shop-by-merchant-repartition")) == 6


def test_late_records_go_to_the_late_topic() -> None:
    app = App("shop")
    events = app.topic("events")
    counts = app.topic("counts")
    (
        app.stream(events, timestamp=lambda e: e["ts"])
        .group_by_key()
        .window(windows.Tumbling(timedelta(seconds=1)), name="w", late="topic")
        .count()
        .to(counts)
    )
    with TestDriver(app) as driver:
        driver.send(events, {"ts": START + 5_000}, key="k")
        driver.send(events, {"ts": START}, key="k")
        late = driver.read("shop-late")
        assert len(late) == 1
        assert late[0].headers["millstream.error.type"] == "millstream.errors.LateRecord"
        assert driver.stats.late_records == 1


def test_advancing_the_clock_closes_the_windows_of_an_idle_partition() -> None:
    app = App("shop")
    events = app.topic("events")
    counts = app.topic("counts")
    (
        app.stream(events, timestamp=lambda e: e["ts"])
        .group_by_key()
        .window(
            windows.Tumbling(timedelta(seconds=10)), name="w", idle_timeout=timedelta(seconds=5)
        )
        .count()
        .to(counts)
    )
    with TestDriver(app) as driver:
        driver.send(events, {"ts": START}, key="k")
        driver.advance(4)
        assert driver.read(counts) == []
        driver.advance(7)  # idle 11 s: stream time passes the window's end
        assert [r.value["value"] for r in driver.read(counts)] == [1]
        with pytest.raises(ValueError, match="forward"):
            driver.advance(-1)


def test_processor_tables_and_sends() -> None:
    app = App("shop")
    payments = app.topic("payments", partitions=2)
    alerts = app.topic("alerts")
    spent = app.table("spent")

    @app.processor(payments, tables=[spent])
    def track(record: Record, ctx: ProcessorContext) -> None:
        table = ctx.table("spent")
        table[record.key] = table.get(record.key, 0) + record.value["amount"]
        if table[record.key] > 100:
            ctx.send(alerts, record.key, {"spent": table[record.key]})

    with TestDriver(app) as driver:
        for amount in (60, 30, 20):
            driver.send(payments, {"amount": amount}, key="c-1")
        driver.send(payments, {"amount": 5}, key="c-2")
        assert [(r.key, r.value) for r in driver.read(alerts)] == [("c-1", {"spent": 110})]
        assert driver.store("spent") == {"c-1": 110, "c-2": 5}
        changelog = driver.read("shop-spent-changelog")
        assert changelog, "state changes are checkpointed to the changelog"


def test_a_join_with_a_global_table_sees_records_sent_to_its_topic() -> None:
    app = App("shop")
    merchants = app.global_table(app.topic("merchants"))
    payments = app.topic("payments")
    enriched = app.topic("enriched")
    app.stream(payments).join(merchants, on=lambda p: p["merchant"]).to(enriched)
    with TestDriver(app) as driver:
        driver.send("merchants", {"country": "NL"}, key="m-1")
        driver.send(payments, {"merchant": "m-1"}, key="c-1")
        driver.send(payments, {"merchant": "m-404"}, key="c-2")
        assert [r.value for r in driver.read(enriched)] == [
            {"merchant": "m-1", "merchants": {"country": "NL"}}
        ]


def test_a_kafka_sink_writes_to_an_in_memory_topic() -> None:
    app = App("shop")
    orders = app.topic("orders")
    app.stream(orders).sink(KafkaSink("copies"))
    with TestDriver(app) as driver:
        driver.send(orders, {"id": 1}, key="k")
        assert [(r.key, r.value) for r in driver.read("copies")] == [(b"k", b'{"id":1}')]
