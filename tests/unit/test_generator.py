"""The synthetic transaction generator: deterministic, realistic enough, honestly labelled."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import orjson
import pytest

from millstream.errors import ConfigurationError
from millstream.producers.generators import (
    COUNTRIES,
    HIGH_RISK_COUNTRIES,
    Transaction,
    TransactionGenerator,
)

N = 20_000


@pytest.fixture(scope="module")
def transactions() -> list[Transaction]:
    return TransactionGenerator(42).take(N)


def test_same_seed_gives_identical_output() -> None:
    first = orjson.dumps(TransactionGenerator(7, cards=50).take(2000))
    assert orjson.dumps(TransactionGenerator(7, cards=50).take(2000)) == first


def test_each_iteration_starts_over_from_the_seed() -> None:
    generator = TransactionGenerator(7)
    assert generator.take(100) == generator.take(100)
    assert next(iter(generator)) == generator.take(1)[0]


def test_different_seeds_differ() -> None:
    assert TransactionGenerator(1).take(50) != TransactionGenerator(2).take(50)


def test_fields_are_well_formed(transactions: list[Transaction]) -> None:
    ids = {t["transaction_id"] for t in transactions}
    assert len(ids) == N
    for t in transactions:
        assert t["country"] in COUNTRIES
        assert t["amount"] > 0
        assert round(t["amount"], 2) == t["amount"]
        assert t["currency"] in {currency for currency, _ in COUNTRIES.values()}
        assert t["card_id"].startswith("card-")
        assert t["merchant_id"].startswith("merch-")
    orjson.dumps(transactions)  # JSON-ready as published


def test_timestamps_increase(transactions: list[Transaction]) -> None:
    stamps = [t["timestamp"] for t in transactions]
    assert all(a < b for a, b in itertools.pairwise(stamps))


def test_all_patterns_present_and_labels_consistent(transactions: list[Transaction]) -> None:
    patterns = Counter(t["fraud_pattern"] for t in transactions)
    assert {"burst", "country_hop", "amount_spike"} <= set(patterns)
    for t in transactions:
        assert t["is_fraud"] == (t["fraud_pattern"] is not None)
    fraud = sum(t["is_fraud"] for t in transactions) / N
    assert 0.01 < fraud < 0.03  # the default fraud_rate is 0.02


def test_fraud_rate_is_a_knob() -> None:
    clean = TransactionGenerator(3, fraud_rate=0).take(5000)
    assert not any(t["is_fraud"] for t in clean)
    # Country hops land minutes after they start: measure past the start-up edge.
    heavy = TransactionGenerator(3, fraud_rate=0.2).take(60_000)[30_000:]
    assert 0.17 < sum(t["is_fraud"] for t in heavy) / len(heavy) < 0.23


def test_bursts_are_many_small_transactions_within_seconds(
    transactions: list[Transaction],
) -> None:
    by_card: defaultdict[str, list[Transaction]] = defaultdict(list)
    for t in transactions:
        if t["fraud_pattern"] == "burst":
            by_card[t["card_id"]].append(t)
    assert by_card
    for burst in by_card.values():
        assert len(burst) >= 5
        assert all(t["amount"] <= 20 for t in burst)
        gaps = [b["timestamp"] - a["timestamp"] for a, b in itertools.pairwise(burst)]
        assert min(gaps) <= 3_000


def test_country_hops_follow_a_home_purchase_within_minutes(
    transactions: list[Transaction],
) -> None:
    generator = TransactionGenerator(42)
    home = {c.card_id: c.home_country for c in generator.cards}
    last_seen: dict[str, Transaction] = {}
    hops = 0
    for t in transactions:
        if t["fraud_pattern"] == "country_hop":
            hops += 1
            assert COUNTRIES[t["country"]][1] != COUNTRIES[home[t["card_id"]]][1]
            previous = last_seen[t["card_id"]]
            assert t["timestamp"] - previous["timestamp"] <= 20 * 60_000
        last_seen[t["card_id"]] = t
    assert hops


def test_amount_spikes_are_far_above_the_cards_typical_amount(
    transactions: list[Transaction],
) -> None:
    typical = {c.card_id: c.typical_amount for c in TransactionGenerator(42).cards}
    spikes = [t for t in transactions if t["fraud_pattern"] == "amount_spike"]
    assert spikes
    assert all(t["amount"] >= 7.9 * typical[t["card_id"]] for t in spikes)


def test_simple_rules_catch_some_fraud_but_not_all(transactions: list[Transaction]) -> None:
    flagged = [t for t in transactions if t["amount"] > 500 or t["country"] in HIGH_RISK_COUNTRIES]
    fraud = [t for t in transactions if t["is_fraud"]]
    caught = [t for t in flagged if t["is_fraud"]]
    assert 0 < len(caught) < len(fraud)
    assert any(not t["is_fraud"] for t in flagged)  # and there are false positives


def test_cards_have_a_home_country_and_mostly_shop_there(
    transactions: list[Transaction],
) -> None:
    home = {c.card_id: c.home_country for c in TransactionGenerator(42).cards}
    legit = [t for t in transactions if not t["is_fraud"]]
    at_home = sum(t["country"] == home[t["card_id"]] for t in legit)
    assert at_home / len(legit) > 0.9


@pytest.mark.parametrize(
    "kwargs", [{"cards": 0}, {"merchants": 3}, {"fraud_rate": 0.9}, {"rate_per_s": 0}]
)
def test_invalid_parameters_are_configuration_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        TransactionGenerator(1, **kwargs)  # type: ignore[arg-type]
