"""The live fraud detectors: one millstream app, run by as many workers as you like::

    millstream worker examples.fraud.detectors:app --processes 2
    millstream dashboard examples.fraud.detectors:app --port 8050

Two stages, both stateful, in the app's one consumer group:

1. ``profile`` (a processor with the table ``profiles``, keyed by card): the amount's
   z-score against the card's running mean and variance (Welford), impossible travel
   from the card's home region and when it was last seen there, and large purchases
   at night in the card's time zone. It sends the transaction, with these signals,
   to the internal topic ``{transactions}-profiled`` (keyed by card, like its input).
2. The DSL over that topic: a left join with the merchant blocklist (a global table
   of its own compacted topic, updated live); per card, session windows of activity
   (gap 2 s) that recognise bursts of small online purchases, a 1-minute tumbling
   count and a 10-minute hopping count (advance 5 minutes), all emitting
   ``.current()`` results so every transaction goes on at once; then the rule step
   (:func:`examples.fraud.rules.decide`), which turns the signals into one decision
   with its reasons and score.

Sinks: every decision upserted into the PostgreSQL table ``scores``; alerts to the
alerts topic and upserted into the table ``alerts`` (both tables keyed by
transaction id, so a replay after a crash rewrites rows instead of adding them);
per-minute statistics, counted from a small record per decision on the internal
topic ``{transactions}-stats``, into Parquet files under ``FRAUD_STATS_DIR`` (one
row per minute: transactions, alerts, alerts per reason). The tables get a
``written_at``/``scored_at`` column filled by PostgreSQL when a row is first
inserted: alert latency is ``written_at`` minus the transaction's event time.

Configuration (environment): ``FRAUD_APP_ID`` (``fraud-live``),
``FRAUD_TRANSACTIONS_TOPIC`` (``transactions``), ``FRAUD_ALERTS_TOPIC``
(``fraud-alerts``), ``FRAUD_BLOCKLIST_TOPIC`` (``merchant-blocklist``),
``FRAUD_POSTGRES_DSN`` (a local server on port 5432), ``FRAUD_STATS_DIR``
(``.local/fraud-stats``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from examples.fraud import rules
from examples.fraud.tables import FraudTableSink
from millstream import App, windows
from millstream.config import Settings
from millstream.processors.handlers import ProcessorContext, Record
from millstream.sinks import FileSink, Sink

PARTITIONS = 6
SESSION_GAP = timedelta(seconds=2)
HOP_SIZE = timedelta(minutes=10)
HOP_ADVANCE = timedelta(minutes=5)
#: RocksDB keeps each store partition on disk under MILLSTREAM_LOCAL_DIR: a worker
#: that takes over partitions from a dead one on the same machine (``--processes 2``,
#: the demo's workers) opens its databases and replays only the changelog after
#: them, instead of all of it; a store in memory replays everything.
STORES: Literal["rocksdb"] = "rocksdb"
#: Records per poll at most. A poll returns when it has this many or after the
#: worker's poll timeout (0.2 s): at a few thousand records/s a large batch means a
#: wait of the whole timeout at every stage, which alert latency pays twice.
BATCH_SIZE = int(os.environ.get("FRAUD_BATCH_SIZE", "250"))
STATS_WINDOW = windows.Tumbling(timedelta(minutes=1), grace=timedelta(seconds=30))
#: Checkpoints (and so PostgreSQL writes) this often: alert latency waits for them.
COMMIT_INTERVAL = float(os.environ.get("FRAUD_COMMIT_INTERVAL", "0.2"))


@dataclass(frozen=True)
class FraudConfig:
    """Names and places of one deployment of the detectors."""

    app_id: str = "fraud-live"
    transactions: str = "transactions"
    alerts: str = "fraud-alerts"
    blocklist: str = "merchant-blocklist"
    dsn: str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
    stats_dir: str = ".local/fraud-stats"

    @classmethod
    def from_env(cls) -> FraudConfig:
        env, default = os.environ.get, cls()
        return cls(
            app_id=env("FRAUD_APP_ID", default.app_id),
            transactions=env("FRAUD_TRANSACTIONS_TOPIC", default.transactions),
            alerts=env("FRAUD_ALERTS_TOPIC", default.alerts),
            blocklist=env("FRAUD_BLOCKLIST_TOPIC", default.blocklist),
            dsn=env("FRAUD_POSTGRES_DSN", default.dsn),
            stats_dir=env("FRAUD_STATS_DIR", default.stats_dir),
        )

    @property
    def profiled(self) -> str:
        return f"{self.transactions}-profiled"

    @property
    def stats(self) -> str:
        return f"{self.transactions}-stats"


_HOP_SIZE_MS = HOP_SIZE // timedelta(milliseconds=1)
_HOP_ADVANCE_MS = HOP_ADVANCE // timedelta(milliseconds=1)


def is_oldest_hop(result: dict[str, Any]) -> bool:
    """Keep one of the hopping windows a record updates: the one that began earliest,
    so each transaction carries one 10-minute count (records arrive here stamped with
    the end of their 1-minute window)."""
    stamped = result["value"]["tx"]["timestamp"] // 60_000 * 60_000 + 60_000
    return bool(result["start"] <= stamped - _HOP_SIZE_MS + _HOP_ADVANCE_MS)


def stats_input(row: dict[str, Any]) -> dict[str, Any]:
    return {"event_time": row["event_time"], "decision": row["decision"], "reasons": row["reasons"]}


def minute_stats(acc: dict[str, Any], score: dict[str, Any]) -> dict[str, Any]:
    out = {"transactions": acc.get("transactions", 0) + 1, "alerts": acc.get("alerts", 0)}
    for reason in rules.REASONS:
        out[reason] = acc.get(reason, 0) + (reason in score["reasons"])
    out["alerts"] += score["decision"] == "alert"
    return out


def stats_row(result: dict[str, Any]) -> dict[str, Any]:
    return {"minute": result["start"], **result["value"]}


def build_app(
    config: FraudConfig | None = None,
    *,
    settings: Settings | None = None,
    table_sink: Callable[[str, str], Sink] = FraudTableSink,
) -> App:
    """The live fraud app of ``config`` (default: from the environment);
    ``table_sink(dsn, table)`` makes the sinks of the ``scores`` and ``alerts`` tables."""
    config = config or FraudConfig.from_env()
    # The range assignor gives every worker the same partition numbers of every topic,
    # so each does its share of both stages; the default (uniform) balances counts
    # only, and could leave one worker all of the heavy second stage.
    app = App(
        config.app_id,
        commit_interval=COMMIT_INTERVAL,
        batch_size=BATCH_SIZE,
        settings=settings,
        consumer_config={"group.remote.assignor": "range"},
    )
    keep = {"retention.ms": str(24 * 3600 * 1000)}
    transactions = app.topic(config.transactions, partitions=PARTITIONS, config=keep)
    profiled = app.topic(config.profiled, partitions=PARTITIONS, config=keep)
    stats = app.topic(config.stats, partitions=1, config=keep)
    alerts = app.topic(config.alerts, partitions=PARTITIONS, config=keep)
    blocklist_topic = app.topic(
        config.blocklist, partitions=1, config={"cleanup.policy": "compact"}
    )
    blocklist = app.global_table(blocklist_topic, name="blocklist")
    profiles = app.table("profiles", backend=STORES)

    @app.processor(transactions, tables=[profiles])
    def profile(record: Record, ctx: ProcessorContext) -> None:
        table = ctx.table("profiles")
        tx = record.value
        card = table.get(record.key) or rules.new_profile()
        signals = rules.profile_signals(card, tx)
        rules.update_profile(card, tx, signals)
        table[record.key] = card
        ctx.send(profiled, record.key, {**tx, "signals": signals})

    decided = (
        app.stream(profiled, timestamp=lambda tx: tx["timestamp"])
        .join(blocklist, on=lambda tx: tx["merchant_id"], how="left",
              merge=lambda tx, entry: {**tx, "blocklisted": entry is not None})
        .group_by_key()
        .window(windows.Session(SESSION_GAP), name="activity", backend=STORES)
        .aggregate(dict, rules.session_add, merge=rules.session_merge)
        .current()
        .map(rules.after_session)
        .group_by_key()
        .window(windows.Tumbling(timedelta(minutes=1)), name="velocity-1m", backend=STORES)
        .aggregate(dict, rules.count_add)
        .current()
        .map(rules.after_count("velocity_1m"))
        .group_by_key()
        .window(windows.Hopping(HOP_SIZE, HOP_ADVANCE), name="velocity-10m", backend=STORES)
        .aggregate(dict, rules.count_add)
        .current()
        .filter(is_oldest_hop)
        .map(rules.after_count("velocity_10m"))
        .flat_map(rules.decide)
    )  # fmt: skip
    decided.sink(table_sink(config.dsn, "scores"))
    flagged = decided.filter(lambda row: row["decision"] == "alert")
    flagged.to(alerts)
    flagged.sink(table_sink(config.dsn, "alerts"))
    # Statistics: a small record per decision to a one-partition topic, read back with
    # the decision's event time (records stamped by the windows above carry a
    # window's end), counted per minute with a grace for the partitions' disorder.
    decided.map(stats_input).rekey(lambda _row: "all").to(stats)
    (
        app.stream(stats, timestamp=lambda row: row["event_time"])
        .group_by_key()
        .window(STATS_WINDOW, name="stats-1m", idle_timeout=5)
        .aggregate(dict, minute_stats)
        .final()
        .map(stats_row)
        .sink(FileSink(config.stats_dir, format="parquet"))
    )
    return app


app = build_app()


def dashboard_panels(settings: Settings) -> list[Any]:
    """The fraud panels of ``millstream dashboard``: alerts per minute by reason, the
    latest alerts, precision and recall so far (see :mod:`examples.fraud.panels`)."""
    from examples.fraud.panels import fraud_panels

    config = FraudConfig.from_env()
    return fraud_panels(settings, config.transactions, config.alerts)
