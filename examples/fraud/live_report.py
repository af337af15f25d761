"""What a live run did, read back from where it went: Kafka and PostgreSQL.

- the labels, from the headers of the transactions topic (the detectors never read
  them; the scorer does);
- every decision from the ``scores`` table, the alerts from the ``alerts`` table;
- alert latency: ``written_at`` (when PostgreSQL first inserted the alert) minus the
  transaction's event time (the wall clock when the generator made it), p50 and p99.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
from rich.console import Console
from rich.table import Table

from examples.fraud.scoring import Scoreboard, percent
from examples.fraud.stream import read_label
from millstream.config import Settings
from millstream.kafka import TopicAdmin, TopicPartition, make_consumer


@dataclass
class LiveSummary:
    """The figures a live run is judged by."""

    transactions_topic: str = ""
    published: int = 0
    scored_rows: int = 0
    scored_distinct: int = 0
    unscored: int = 0  # published transactions without a row in ``scores``
    alert_rows: int = 0
    alerts_by_reason: dict[str, int] = field(default_factory=dict)
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None
    patterns: list[dict[str, Any]] = field(default_factory=list)
    stats_minutes: list[dict[str, Any]] = field(default_factory=list)
    #: Worker -> records in and out (every stage and topic), or None for one killed.
    workers: dict[str, dict[str, float] | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


def read_labels(settings: Settings, topic: str, timeout: float = 120.0) -> Scoreboard:
    """Every transaction id of ``topic`` with its label (the ``fraud.pattern`` header).

    Raises:
        TimeoutError: the topic could not be read to its end within ``timeout`` seconds.
    """
    admin = TopicAdmin(settings)
    ends = admin.end_offsets((topic, p) for p in range(admin.describe(topic).partitions))
    pending = {p: end for (_, p), end in ends.items() if end > 0}
    consumer = make_consumer(settings, f"fraud-labels-{uuid.uuid4().hex[:8]}")
    board, deadline = Scoreboard(), time.monotonic() + timeout
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in pending])
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout:g} s")
            for m in consumer.consume(5000, 0.5):
                partition, offset = m.partition(), m.offset()
                if m.error() is not None or partition is None or offset is None:
                    continue
                labelled, pattern = read_label(m.headers())
                tx_id = orjson.loads(m.value() or b"{}").get("transaction_id")
                if labelled and tx_id is not None:
                    board.add_label(tx_id, pattern)
                if offset + 1 >= pending.get(partition, 0):
                    pending.pop(partition, None)
    finally:
        consumer.close()
    return board


def summarize(dsn: str, topic: str, board: Scoreboard) -> LiveSummary:
    """The run's figures from its tables and the labels of ``topic`` (``board``; the
    alerts are added to it here)."""
    summary = LiveSummary(transactions_topic=topic, published=len(board.labels))
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = {row[0] for row in conn.execute("SELECT transaction_id FROM scores")}
        summary.scored_rows = conn.execute("SELECT count(*) FROM scores").fetchone()[0]  # type: ignore[index]
        summary.scored_distinct = len(ids)
        summary.unscored = len(set(board.labels) - ids)
        for tx_id, reasons in conn.execute("SELECT transaction_id, reasons FROM alerts"):
            board.add_alert(tx_id, reasons)
        summary.alert_rows = len(board.reasons)
        by_reason = conn.execute(
            "SELECT r, count(*) FROM alerts, jsonb_array_elements_text(reasons) r GROUP BY r"
        )
        summary.alerts_by_reason = {reason: count for reason, count in by_reason}
        latency = conn.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY ms), max(ms) FROM "
            "(SELECT extract(epoch FROM written_at) * 1000 - event_time AS ms FROM alerts) t"
        ).fetchone()
    if latency is not None and latency[0] is not None:
        summary.latency_p50_ms, summary.latency_p99_ms = (float(v) for v in latency[0])
        summary.latency_max_ms = float(latency[1])
    summary.patterns = [
        {**asdict(s), "recall": s.recall, "precision": s.precision} for s in board.scores()
    ]
    return summary


def read_stats(directory: Path) -> list[dict[str, Any]]:
    """The per-minute statistics rows in the Parquet files under ``directory``."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

    rows: list[dict[str, Any]] = []
    for path in sorted(directory.rglob("*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return sorted(rows, key=lambda row: row["minute"])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def print_summary(console: Console, summary: LiveSummary) -> None:
    console.rule("[bold]Fraud demo, live: the summary")
    console.print(
        f"transactions in: [bold]{summary.published:,}[/]; scored in PostgreSQL: "
        f"{summary.scored_distinct:,} rows ({summary.unscored:,} missing); "
        f"alerts out: [bold]{summary.alert_rows:,}[/]"
    )
    for name, counts in summary.workers.items():
        if counts is None:
            console.print(f"{name}: killed on the way, its counts went with it")
        else:
            console.print(
                f"{name}: {counts.get('records_in', 0):,.0f} records in, "
                f"{counts.get('records_out', 0):,.0f} out, over both stages"
            )
    reasons = Table(title="Alerts by reason", title_justify="left")
    reasons.add_column("reason")
    reasons.add_column("alerts", justify="right")
    for reason, count in sorted(summary.alerts_by_reason.items()):
        reasons.add_row(reason, f"{count:,}")
    console.print(reasons)
    patterns = Table(title="Precision and recall by pattern", title_justify="left")
    for column in ("pattern", "fraud", "caught", "recall", "alerted", "precision"):
        patterns.add_column(column, justify="left" if column == "pattern" else "right")
    for p in summary.patterns:
        patterns.add_row(
            p["pattern"],
            f"{p['fraud']:,}",
            f"{p['caught']:,}",
            percent(p["recall"]),
            f"{p['alerted']:,}",
            percent(p["precision"]),
        )
    console.print(patterns)
    console.print(
        f"alert latency (event time to the row in PostgreSQL): p50 [bold]"
        f"{_ms(summary.latency_p50_ms)}[/], p99 [bold]{_ms(summary.latency_p99_ms)}[/], "
        f"max {_ms(summary.latency_max_ms)}"
    )
    for row in summary.stats_minutes:
        minute = time.strftime("%H:%M", time.gmtime(row["minute"] / 1000))
        console.print(
            f"Parquet statistics, minute {minute} UTC: {row['transactions']:,} transactions, "
            f"{row['alerts']:,} alerts"
        )
    for note in summary.notes:
        console.print(note)
