"""Fraud detection with stateless rules: every card transaction is checked on its own.

Run it against generated transactions (``scripts/demo`` does all of this for you)::

    millstream publish transactions --generate 100000 --partitions 6
    millstream worker examples.fraud.pipeline:app

Each transaction that breaks at least one rule becomes an alert on the alerts
topic, keyed by card id::

    {"transaction": {...}, "rules": ["high_risk_country"], "score": 0.6}

The score adds up the weights of the rules that fired (at most 1.0), so alerts can
be ranked for review. Topic names come from ``FRAUD_TRANSACTIONS_TOPIC`` and
``FRAUD_ALERTS_TOPIC`` (defaults ``transactions`` and ``fraud-alerts``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

from millstream import App
from millstream.producers.generators import HIGH_RISK_COUNTRIES, Transaction

TRANSACTIONS_TOPIC = os.environ.get("FRAUD_TRANSACTIONS_TOPIC", "transactions")
ALERTS_TOPIC = os.environ.get("FRAUD_ALERTS_TOPIC", "fraud-alerts")
#: Partitions of both topics when the worker has to create them.
PARTITIONS = 6
#: Generated transactions carry event times from 2026-01-01 on, and Kafka's time-based
#: retention (7 days by default) goes by record timestamps: keep records of any age.
TOPIC_CONFIG = {"retention.ms": "-1"}

#: Amounts are in the card's currency; every currency here is of the order of the dollar.
LARGE_AMOUNT = 1_000.0
#: Merchant categories where stolen cards are cashed out, and the amount that is odd there.
RISKY_CATEGORIES = frozenset({"electronics", "jewelry", "travel"})
RISKY_CATEGORY_AMOUNT = 300.0


class Rule(NamedTuple):
    """A named test of one transaction and the weight it adds to the alert score."""

    name: str
    weight: float
    test: Callable[[Transaction], bool]


RULES = (
    Rule("large_amount", 0.5, lambda tx: tx["amount"] >= LARGE_AMOUNT),
    Rule("high_risk_country", 0.6, lambda tx: tx["country"] in HIGH_RISK_COUNTRIES),
    Rule(
        "risky_merchant",
        0.4,
        lambda tx: (
            tx["merchant_category"] in RISKY_CATEGORIES and tx["amount"] >= RISKY_CATEGORY_AMOUNT
        ),
    ),
)


def assess(tx: Transaction) -> dict[str, Any]:
    """The rules ``tx`` breaks and its score; no rules means no alert."""
    fired = [rule for rule in RULES if rule.test(tx)]
    score = min(1.0, sum(rule.weight for rule in fired))
    return {"transaction": tx, "rules": [rule.name for rule in fired], "score": round(score, 2)}


def build_app(
    app_id: str = "fraud-demo",
    *,
    transactions: str = TRANSACTIONS_TOPIC,
    alerts: str = ALERTS_TOPIC,
) -> App:
    """The stateless fraud app: transactions -> rules -> alerts."""
    app = App(app_id)
    source = app.topic(transactions, partitions=PARTITIONS, config=TOPIC_CONFIG)
    sink = app.topic(alerts, partitions=PARTITIONS, config=TOPIC_CONFIG)

    (
        app.stream(source)
        .map(assess)
        .filter(lambda alert: bool(alert["rules"]))
        .to(sink)
    )  # fmt: skip
    return app


app = build_app()
