"""group_by through a repartition topic, and stream-table joins with a global table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import orjson
from support import (
    ThreadedWorker,
    consume_all,
    delete_topics,
    produce,
    produce_json,
    record_count,
    wait_for,
)

from millstream import App
from millstream.config import Settings
from millstream.kafka import TopicAdmin, TopicSpec
from millstream.processors import windows


def test_group_by_repartitions_so_each_key_is_counted_in_one_place(
    unique_name: Callable[[str], str], settings: Settings, bootstrap_servers: str
) -> None:
    app_id, src, out = unique_name("app"), unique_name("in"), unique_name("out")
    app = App(app_id, bootstrap_servers=bootstrap_servers, commit_interval=0.5)
    source = app.topic(src, partitions=4)
    output = app.topic(out, partitions=4)
    # One-hour windows with an hour of grace: nothing is late, whatever the interleaving.
    hour = timedelta(hours=1)
    (
        app.stream(source, timestamp=lambda v: v["ts"])
        .group_by(lambda v: v["card"], name="by-card")
        .window(windows.Tumbling(hour, grace=hour), name="hourly")
        .sum(lambda v: v["amount"])
        .to(output)
    )
    base = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
    records = [
        (f"txn-{i}", {"card": f"card-{i % 50}", "amount": i % 7, "ts": base + (i % 1000) * 1000})
        for i in range(20_000)
    ]
    # A record three hours later, on every card, closes the first hour. It is sent once
    # every record is in the repartition topic: records from different source partitions
    # interleave there, and a closer must not overtake the records it closes.
    closers = [
        (f"close-{c}", {"card": f"card-{c}", "amount": 0, "ts": base + 3 * 3_600_000})
        for c in range(50)
    ]
    expected: Counter[str] = Counter()
    for _, v in records:
        expected[v["card"]] += v["amount"]
    stop = ThreadedWorker(app).stop
    try:
        produce_json(settings, src, records)
        repartition = f"{app_id}-by-card-repartition"
        wait_for(lambda: record_count(settings, repartition) >= len(records), 90, "repartition")
        produce_json(settings, src, closers)
        wait_for(lambda: record_count(settings, out) >= 50, 90, "50 hourly sums")
    finally:
        stats = stop()
    results = {r.key.decode(): r.json() for r in consume_all(settings, out)}
    assert {k: v["value"] for k, v in results.items()} == dict(expected)
    assert all(v["start"] == base and v["end"] == base + 3_600_000 for v in results.values())
    assert stats.late_records == 0
    delete_topics(
        settings,
        [
            src,
            out,
            f"{app_id}-by-card-repartition",
            f"{app_id}-hourly-changelog",
            f"{app_id}-dlq",
            f"{app_id}-late",
        ],
    )


def test_join_with_a_global_table_enriches_and_follows_updates(
    unique_name: Callable[[str], str], settings: Settings, bootstrap_servers: str, admin: TopicAdmin
) -> None:
    app_id, src, out, profiles = (unique_name(k) for k in ("app", "in", "out", "profiles"))
    admin.create([TopicSpec(profiles, 2, config={"cleanup.policy": "compact"})])
    produce_json(settings, profiles, [(f"card-{i}", {"limit": i * 100}) for i in range(10)])
    app = App(app_id, bootstrap_servers=bootstrap_servers, commit_interval=0.5)
    table = app.global_table(profiles, name="profile")
    output = app.topic(out, partitions=2)
    app.stream(app.topic(src, partitions=2)).join(table, on=lambda v: v["card"]).to(output)
    left_out = app.topic(unique_name("left"), partitions=2)
    app.stream(src).join(table, on=lambda v: v["card"], how="left").to(left_out)

    stop = ThreadedWorker(app).stop
    try:
        first = [(f"t{i}", {"card": f"card-{i % 12}"}) for i in range(24)]
        produce_json(settings, src, first)
        wait_for(lambda: record_count(settings, out) >= 20, 60, "inner-join outputs")
        wait_for(lambda: record_count(settings, left_out.name) >= 24, 60, "left-join outputs")
        # A table update (and a tombstone) reaches the running worker.
        produce_json(settings, profiles, [("card-11", {"limit": 1})])
        produce(settings, profiles, [("card-0", None)])
        second = [(f"u{i}", {"card": f"card-{i}"}) for i in (0, 11)]

        def updated() -> bool:
            produce_json(settings, src, second)
            joined = [r.json() for r in consume_all(settings, out)]
            return any(v["card"] == "card-11" for v in joined)

        wait_for(updated, 60, "the table update to be joined", interval=1.0)
    finally:
        stop()
    inner = [r.json() for r in consume_all(settings, out)]
    assert {v["card"] for v in inner[:20]} == {f"card-{i}" for i in range(10)}
    assert all(v["profile"] == {"limit": int(v["card"][5:]) * 100} for v in inner[:20])
    assert any(v == {"card": "card-11", "profile": {"limit": 1}} for v in inner)
    assert not any(v["card"] == "card-0" for v in inner[20:]), "the tombstone removed card-0"
    left = [r.json() for r in consume_all(settings, left_out.name)]
    assert {"card": "card-10", "profile": None} in left
    assert orjson.dumps(left[0])
    delete_topics(settings, [src, out, profiles, left_out.name, f"{app_id}-dlq", f"{app_id}-late"])
