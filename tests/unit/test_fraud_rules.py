"""The live fraud example without a broker: its rules, its app on the test driver, and
the dashboard panels' snapshots."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from examples.fraud import rules
from examples.fraud.detectors import FraudConfig, build_app, dashboard_panels, is_oldest_hop
from examples.fraud.panels import AlertsByReason, FraudFeed, LatestAlerts, PrecisionRecall
from examples.fraud.scoring import Scoreboard
from examples.fraud.stream import PATTERNS, LiveGenerator, label_headers, read_label
from millstream.config import load_settings
from millstream.sinks import Sink, SinkRecord
from millstream.testing import TestDriver

START = 1_796_000_000_000  # epoch ms


def tx(amount: float, *, at: int = START, country: str = "DE", category: str = "grocery") -> Any:
    return {
        "transaction_id": f"t-{at}-{amount}",
        "card_id": "card-1",
        "merchant_id": "merch-1",
        "merchant_category": category,
        "country": country,
        "amount": amount,
        "currency": "EUR",
        "timestamp": at,
        "utc_offset_min": 0,
    }


def profile_of(*amounts: float, country: str = "DE", at: int = START) -> dict[str, Any]:
    profile = rules.new_profile()
    for i, amount in enumerate(amounts):
        record = tx(amount, at=at + i, country=country)
        rules.update_profile(profile, record, rules.profile_signals(profile, record))
    return profile


def test_the_amount_z_score_uses_the_cards_own_history() -> None:
    profile = profile_of(20, 25, 30, 22, 28)
    assert rules.profile_signals(profile, tx(24, at=START + 3_600_000 * 12))["spike"] is False
    spike = rules.profile_signals(profile, tx(500, at=START + 3_600_000 * 12))
    assert spike["spike"] is True and spike["zscore"] > rules.SPIKE_Z
    # Too little history: no verdict.
    assert rules.profile_signals(profile_of(20), tx(500))["zscore"] is None


def test_a_spike_does_not_move_the_cards_statistics() -> None:
    profile = profile_of(20, 25, 30)
    before = dict(profile)
    record = tx(900, at=START + 3_600_000 * 12)
    rules.update_profile(profile, record, rules.profile_signals(profile, record))
    assert (profile["n"], profile["mean"]) == (before["n"], before["mean"])


def test_impossible_travel_is_another_region_soon_after_home() -> None:
    profile = profile_of(20, 25, 30, country="DE")
    assert rules.profile_signals(profile, tx(30, at=START + 5_000, country="AU"))["travel"]
    # The same region, an online shop, or a day later: no alert.
    assert not rules.profile_signals(profile, tx(30, at=START + 5_000, country="FR"))["travel"]
    online = tx(30, at=START + 5_000, country="AU", category="digital_goods")
    assert not rules.profile_signals(profile, online)["travel"]
    later = tx(30, at=START + rules.TRAVEL_WINDOW_MS + 10_000, country="AU")
    assert not rules.profile_signals(profile, later)["travel"]


def test_a_burst_alerts_its_earlier_purchases_once() -> None:
    acc: dict[str, Any] = {}
    decided = []
    for i in range(4):
        record = tx(2.0, at=START + 200 * i, category="digital_goods")
        record["signals"] = {"zscore": None, "spike": False, "travel": False, "night": False}
        acc = rules.session_add(acc, record)
        decided.append(rules.decide(rules.after_session({"start": START, "value": acc})))
    assert [len(rows) for rows in decided] == [1, 1, 3, 1]
    assert [rows[0]["decision"] for rows in decided] == ["pass", "pass", "alert", "alert"]
    earlier = {row["transaction_id"] for row in decided[2][1:]}
    assert earlier == {decided[0][0]["transaction_id"], decided[1][0]["transaction_id"]}
    assert all(row["reasons"] == ["card_testing"] for row in decided[2])


def test_one_hopping_window_per_record_goes_on() -> None:
    minute_end = START // 60_000 * 60_000 + 60_000
    starts = [s for s in range(minute_end - 600_000 + 1, minute_end + 1) if s % 300_000 == 0]
    kept = [s for s in starts if is_oldest_hop({"start": s, "value": {"tx": tx(1, at=START)}})]
    assert len(starts) == 2 and kept == [min(starts)]


class MemorySink(Sink):
    def __init__(self, dsn: str, table: str) -> None:
        self.table = table
        self.rows: list[Any] = []
        SINKS[table] = self

    def write(self, records: Sequence[SinkRecord]) -> None:
        self.rows.extend(r.value for r in records)

    def flush(self) -> None:
        pass


SINKS: dict[str, MemorySink] = {}


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[tuple[TestDriver, FraudConfig]]:
    config = FraudConfig(app_id="fraud-unit", stats_dir=str(tmp_path / "stats"))
    app = build_app(config, table_sink=MemorySink)
    with TestDriver(app, start_ms=START) as test_driver:
        yield test_driver, config


def test_the_app_scores_every_transaction_and_alerts_each_pattern(
    driver: tuple[TestDriver, FraudConfig],
) -> None:
    test_driver, config = driver
    generator = LiveGenerator(seed=3, cards=100)  # a hundred cards: history builds fast
    listing = generator.list_merchant(START - 10_000)
    test_driver.send(config.blocklist, listing.value, key=listing.key)
    board, sent = Scoreboard(), 0
    events = generator.warm_up(START, 5)
    for ms in range(START, START + 40_000, 10):
        events += generator.arrivals(1, ms) + generator.due(ms)
        for event in events:
            if event.topic == "blocklist":
                continue
            board.add_label(event.value["transaction_id"], event.pattern)
            headers = label_headers(event.pattern)
            test_driver.send(config.transactions, event.value, key=event.key, headers=headers)  # type: ignore[arg-type]
            sent += 1
        events = []

    scored = {row["transaction_id"] for row in SINKS["scores"].rows}
    assert scored == set(board.labels) and sent == len(board.labels)
    alerts = SINKS["alerts"].rows
    assert [a.value["transaction_id"] for a in test_driver.read(config.alerts)] == [
        a["transaction_id"] for a in alerts
    ]
    for alert in alerts:
        board.add_alert(alert["transaction_id"], alert["reasons"])
    for score in board.scores():
        assert score.fraud > 0, score
        assert score.recall is not None and score.recall > 0.85, score
        assert score.precision is not None and score.precision > 0.85, score


def test_labels_travel_only_in_headers() -> None:
    generator = LiveGenerator(seed=1, cards=50)
    for event in generator.warm_up(START, 2) + generator.arrivals(2000, START):
        assert "fraud" not in orjson.dumps(event.value).decode()
        labelled, pattern = read_label(label_headers(event.pattern))
        assert labelled and pattern == event.pattern


# -- the dashboard panels ----------------------------------------------------------------


def feed_with_alerts() -> FraudFeed:
    feed = FraudFeed(load_settings(), "transactions", "fraud-alerts")
    for i, pattern in enumerate(["card_testing", None, "amount_spike", None]):
        value = orjson.dumps({"transaction_id": f"t{i}"})
        feed.add_transaction(value, label_headers(pattern))
    minute = START // 60_000 * 60_000
    for tx_id, reasons in [("t0", ["card_testing"]), ("t1", ["amount_spike"])]:
        alert = {"transaction_id": tx_id, "event_time": minute + 1000, "card_id": "card-1"}
        feed.add_alert(orjson.dumps({**alert, "amount": 3.5, "reasons": reasons, "score": 0.8}))
    return feed


def test_the_precision_recall_panel_scores_what_it_read() -> None:
    snapshot = PrecisionRecall(feed_with_alerts()).snapshot()
    assert snapshot["kind"] == "table"
    rows = {row[0]: row for row in snapshot["rows"]}
    assert set(rows) == set(PATTERNS)
    assert rows["card_testing"][1:] == [1, 1, "100.0%", 1, "100.0%"]
    assert rows["amount_spike"][1:] == [1, 0, "0.0%", 1, "0.0%"]
    assert rows["night_time"][1:] == [0, 0, "-", 0, "-"]


def test_the_latest_alerts_panel_shows_the_newest_first() -> None:
    snapshot = LatestAlerts(feed_with_alerts()).snapshot()
    assert snapshot["kind"] == "table"
    assert snapshot["columns"] == ["time", "card", "amount", "reasons", "score"]
    assert [row[3] for row in snapshot["rows"]] == ["amount_spike", "card_testing"]


def test_the_alerts_per_minute_panel_counts_by_reason() -> None:
    snapshot = AlertsByReason(feed_with_alerts()).snapshot()
    assert snapshot["kind"] == "bars"
    assert set(snapshot["items"]) == set(rules.REASONS)
    assert snapshot["items"]["card_testing"] == 1
    assert snapshot["items"]["amount_spike"] == 1
    assert snapshot["items"]["night_time"] == 0


def test_the_app_module_offers_the_panels() -> None:
    panels = dashboard_panels(load_settings())
    assert [p.title for p in panels] == [
        "Alerts per minute by reason",
        "Latest alerts",
        "Precision and recall so far",
    ]
    assert all(callable(p.start) and callable(p.stop) for p in panels)
