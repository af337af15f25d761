"""Scoring the demo's alerts against the generator's ground truth, and the summary tables.

A transaction counts as flagged when at least one alert names it, whichever app
sent it and however often (under at-least-once delivery an alert can repeat).
Precision is the share of flagged transactions that are fraudulent; recall the
share of fraudulent transactions that were flagged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from millstream.processors.worker_config import WorkerStats
from millstream.producers.generators import Transaction


@dataclass
class GroundTruth:
    """What the generator published: how many transactions, and which were fraud."""

    published: int = 0
    fraud: dict[str, str] = field(default_factory=dict)  # transaction id -> pattern

    def record(self, tx: Transaction) -> None:
        self.published += 1
        if tx["is_fraud"] and tx["fraud_pattern"] is not None:
            self.fraud[tx["transaction_id"]] = tx["fraud_pattern"]

    def patterns(self) -> Counter[str]:
        return Counter(self.fraud.values())


@dataclass
class AlertLog:
    """The alerts read back from the alerts topic."""

    records: int = 0
    rules: dict[str, set[str]] = field(default_factory=dict)  # transaction id -> rules

    def add(self, alert: dict[str, Any]) -> None:
        self.records += 1
        tx_id = alert["transaction"]["transaction_id"]
        self.rules.setdefault(tx_id, set()).update(alert["rules"])


@dataclass(frozen=True)
class AppRun:
    """One app's worker as the demo ran it."""

    label: str
    app_id: str
    stats: WorkerStats
    seconds: float  # from its first consumed record to its last input record

    @property
    def rate(self) -> float:
        return self.stats.records_in / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class DemoRun:
    """Everything the summary shows."""

    seed: int
    truth: GroundTruth
    publish_seconds: float
    apps: Sequence[AppRun]
    alerts: AlertLog
    uncommitted: int


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _n(value: int) -> str:
    return f"{value:,}"


def processing_table(run: DemoRun) -> Table:
    table = Table(
        title="Processing",
        title_justify="left",
        caption="rules: pipeline.py, bursts: bursts.py; each app ran one worker thread",
        caption_justify="left",
    )
    for column in ("app", "records in", "alerts out", "dead letters", "time", "rate"):
        table.add_column(column, justify="left" if column == "app" else "right", no_wrap=True)
    for app in run.apps:
        table.add_row(
            app.label,
            _n(app.stats.records_in),
            _n(app.stats.records_out),
            _n(app.stats.dead_letters),
            f"{app.seconds:.1f} s",
            f"{app.rate:,.0f}/s",
        )
    return table


def rules_table(truth: GroundTruth, alerts: AlertLog) -> Table:
    table = Table(title="Alerts by rule", title_justify="left")
    for column in ("rule", "flagged", "fraudulent", "precision"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    flagged: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for tx_id, rules in alerts.rules.items():
        for rule in rules:
            flagged[rule] += 1
            hits[rule] += tx_id in truth.fraud
    for rule in sorted(flagged):
        table.add_row(rule, _n(flagged[rule]), _n(hits[rule]), _pct(hits[rule], flagged[rule]))
    return table


def patterns_table(truth: GroundTruth, alerts: AlertLog) -> Table:
    table = Table(title="Fraud caught, by pattern", title_justify="left")
    for column in ("pattern", "fraudulent", "caught", "recall"):
        table.add_column(column, justify="left" if column == "pattern" else "right")
    caught = Counter(p for tx_id, p in truth.fraud.items() if tx_id in alerts.rules)
    for pattern, total in sorted(truth.patterns().items()):
        table.add_row(pattern, _n(total), _n(caught[pattern]), _pct(caught[pattern], total))
    total_caught = sum(caught.values())
    table.add_section()
    table.add_row(
        "all", _n(len(truth.fraud)), _n(total_caught), _pct(total_caught, len(truth.fraud))
    )
    return table


def verdict_lines(run: DemoRun) -> Iterable[str]:
    truth, alerts = run.truth, run.alerts
    flagged = len(alerts.rules)
    true_positives = sum(1 for tx_id in alerts.rules if tx_id in truth.fraud)
    yield (
        f"[bold]{_n(flagged)}[/] of {_n(truth.published)} transactions flagged "
        f"by {_n(alerts.records)} alerts: precision [bold]{_pct(true_positives, flagged)}[/], "
        f"recall [bold]{_pct(true_positives, len(truth.fraud))}[/] "
        f"({_n(true_positives)} of {_n(len(truth.fraud))} fraudulent transactions)"
    )
    if run.uncommitted:
        yield f"[yellow]{_n(run.uncommitted)} input records were not committed by every app[/]"
    else:
        yield "every app processed and committed all of its input"


def print_summary(console: Console, run: DemoRun) -> None:
    """The demo's result: throughput per app, alerts per rule, recall per fraud pattern."""
    published = run.truth.published
    rate = published / run.publish_seconds if run.publish_seconds > 0 else 0.0
    console.print()
    console.rule(f"[bold]Fraud demo: {_n(published)} transactions, seed {run.seed}")
    console.print(
        f"published {_n(published)} transactions in {run.publish_seconds:.1f} s ({rate:,.0f} rec/s)"
    )
    console.print(processing_table(run))
    console.print(rules_table(run.truth, run.alerts))
    console.print(patterns_table(run.truth, run.alerts))
    for line in verdict_lines(run):
        console.print(line)
