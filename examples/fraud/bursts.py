"""Fraud detection with state: bursts of small online purchases on one card.

Card testers try a stolen card with a quick run of small online purchases. No
single one of them looks odd, so :mod:`examples.fraud.pipeline` cannot see them;
a window per card can. Here a burst is a session of at least ``BURST_SIZE`` small
purchases in online categories, at most ``BURST_GAP`` apart::

    millstream worker examples.fraud.bursts:app

Transactions are keyed by card id, so ``group_by_key()`` groups them by card
without a repartition topic. Session windows are kept per card in a state store
backed by a changelog topic and emitted once, when they close. Every transaction
of a burst becomes an alert of the same shape as the stateless pipeline's, plus
the burst it belongs to::

    {"transaction": {...}, "rules": ["card_burst"], "score": 0.9,
     "burst": {"start": <ms>, "end": <ms>, "size": 7}}
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from examples.fraud.pipeline import ALERTS_TOPIC, PARTITIONS, TOPIC_CONFIG, TRANSACTIONS_TOPIC
from millstream import App, windows
from millstream.producers.generators import Transaction

ONLINE_CATEGORIES = frozenset({"digital_goods", "entertainment"})
SMALL_AMOUNT = 25.0
#: Longest pause between two purchases of one burst, in event time.
BURST_GAP = timedelta(seconds=5)
BURST_SIZE = 5
BURST_SCORE = 0.9
#: Wall-clock idleness after which a partition's stream time moves on by itself, so
#: the last sessions close even when no more transactions arrive.
IDLE_TIMEOUT = timedelta(seconds=1)


def is_small_online(tx: Transaction) -> bool:
    return tx["merchant_category"] in ONLINE_CATEGORIES and tx["amount"] <= SMALL_AMOUNT


def burst_alerts(session: dict[str, Any]) -> list[dict[str, Any]]:
    """One alert per transaction of a session window ``{"start", "end", "value"}``."""
    purchases: list[Transaction] = session["value"]
    burst = {"start": session["start"], "end": session["end"], "size": len(purchases)}
    return [
        {"transaction": tx, "rules": ["card_burst"], "score": BURST_SCORE, "burst": burst}
        for tx in purchases
    ]


def build_app(
    app_id: str = "fraud-demo-bursts",
    *,
    transactions: str = TRANSACTIONS_TOPIC,
    alerts: str = ALERTS_TOPIC,
) -> App:
    """The stateful fraud app: transactions -> sessions per card -> burst alerts."""
    app = App(app_id)
    source = app.topic(transactions, partitions=PARTITIONS, config=TOPIC_CONFIG)
    sink = app.topic(alerts, partitions=PARTITIONS, config=TOPIC_CONFIG)

    (
        app.stream(source, timestamp=lambda tx: tx["timestamp"])
        .filter(is_small_online)
        .group_by_key()
        .window(windows.Session(BURST_GAP), name="card-sessions", idle_timeout=IDLE_TIMEOUT)
        .aggregate(list, lambda txs, tx: [*txs, tx], merge=lambda a, b: a + b)
        .final()
        .filter(lambda session: len(session["value"]) >= BURST_SIZE)
        .flat_map(burst_alerts)
        .to(sink)
    )
    return app


app = build_app()
