"""A deterministic stream of synthetic card transactions with labelled fraud.

Each card has a home country, a billing currency and a typical amount; most of its
transactions happen at home, near that amount. Three fraud patterns are injected,
each labelled ``is_fraud=True`` with its ``fraud_pattern``:

- ``burst``: many small online purchases on one card within seconds;
- ``country_hop``: a purchase at home, then minutes later one or two in a distant
  country, half of the time one of :data:`HIGH_RISK_COUNTRIES`;
- ``amount_spike``: one purchase far above the card's typical amount.

Legitimate noise makes simple rules imperfect: cardholders travel (now and then
to a high-risk country) and make rare large purchases, while bursts and spikes on
low-spending cards stay below any fixed amount threshold.

Amounts are in the card's billing currency, and every currency here is of the
same order as the US dollar, so one amount threshold is meaningful across cards.
The high-risk countries use ISO 3166 user-assigned codes (XA-XC) so the demo
names no real country as risky. Same seed and parameters, same output.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, TypedDict

from millstream.errors import ConfigurationError

FraudPattern = Literal["burst", "country_hop", "amount_spike"]

#: Country code -> (billing currency, region); a change of region is a "distant" move.
COUNTRIES: dict[str, tuple[str, str]] = {
    "US": ("USD", "north_america"),
    "CA": ("CAD", "north_america"),
    "GB": ("GBP", "europe"),
    "IE": ("EUR", "europe"),
    "DE": ("EUR", "europe"),
    "FR": ("EUR", "europe"),
    "NL": ("EUR", "europe"),
    "ES": ("EUR", "europe"),
    "IT": ("EUR", "europe"),
    "CH": ("CHF", "europe"),
    "AU": ("AUD", "oceania"),
    "NZ": ("NZD", "oceania"),
    "SG": ("SGD", "asia"),
    "XA": ("USD", "high_risk"),
    "XB": ("USD", "high_risk"),
    "XC": ("USD", "high_risk"),
}

#: Synthetic high-risk jurisdictions: the target of half the country hops.
HIGH_RISK_COUNTRIES: frozenset[str] = frozenset({"XA", "XB", "XC"})

# Where cards are issued, with weights; high-risk countries issue no cards.
_HOME_WEIGHTS = {
    "US": 30, "GB": 12, "DE": 10, "FR": 8, "CA": 7, "AU": 6, "NL": 5,
    "ES": 5, "IT": 5, "SG": 4, "IE": 3, "CH": 3, "NZ": 2,
}  # fmt: skip

_EVERYDAY_CATEGORIES = {
    "grocery": 30, "restaurant": 20, "fuel": 12, "pharmacy": 6, "clothing": 10,
    "entertainment": 7, "digital_goods": 6, "electronics": 4, "travel": 3, "jewelry": 2,
}  # fmt: skip
_BURST_CATEGORIES = ("digital_goods", "entertainment")
_SPIKE_CATEGORIES = ("electronics", "jewelry", "travel")
_PATTERNS: tuple[FraudPattern, ...] = ("burst", "country_hop", "amount_spike")
_PATTERN_WEIGHTS = (1, 2, 2)
# Per injected pattern, the mean number of fraudulent transactions (burst 8.5, hop 1.5,
# spike 1) and of transactions beyond the arrival that started it (7.5, 1.5, 0): they
# convert the wanted fraud rate into the chance that an arrival starts a pattern.
_FRAUD_PER_PATTERN = (1 * 8.5 + 2 * 1.5 + 2 * 1.0) / 5
_EXTRA_PER_PATTERN = (1 * 7.5 + 2 * 1.5 + 2 * 0.0) / 5
# Merchants that always exist: one per country, then one per category the patterns use.
_FIXED_CATEGORIES = _BURST_CATEGORIES + _SPIKE_CATEGORIES
MIN_MERCHANTS = len(COUNTRIES) + len(_FIXED_CATEGORIES)

DAY_MS = 86_400_000


def today_utc_ms() -> int:
    """Midnight UTC of the current day, the default start of the stream's event time.

    Recent enough that brokers do not delete the records by retention time (which
    counts from record timestamps), and fixed for a whole day, so a seed gives the
    same stream all day; pass ``start_ms`` for output that never changes.
    """
    return time.time_ns() // 1_000_000 // DAY_MS * DAY_MS


class Transaction(TypedDict):
    """One card transaction, as published (JSON-ready)."""

    transaction_id: str
    card_id: str
    merchant_id: str
    merchant_category: str
    country: str
    amount: float
    currency: str
    timestamp: int
    is_fraud: bool
    fraud_pattern: FraudPattern | None


@dataclass(frozen=True)
class Card:
    card_id: str
    home_country: str
    currency: str
    typical_amount: float


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    category: str
    country: str


class TransactionGenerator:
    """Synthetic card transactions in event-time order, with labelled fraud.

    ``fraud_rate`` is the approximate fraction of fraudulent transactions;
    ``rate_per_s`` the mean number of transactions per second of event time, which
    starts at ``start_ms``. Each iteration starts over from the seed, so
    ``take(n)`` always returns the same n transactions.

    Raises:
        ConfigurationError: fewer than one card, fewer merchants than countries, or
            a fraud rate outside [0, 0.5].
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        cards: int = 1000,
        merchants: int = 200,
        fraud_rate: float = 0.02,
        rate_per_s: float = 20.0,
        start_ms: int | None = None,
    ) -> None:
        if cards < 1:
            raise ConfigurationError("cards", "need at least one card")
        if merchants < MIN_MERCHANTS:
            raise ConfigurationError("merchants", f"need at least {MIN_MERCHANTS} merchants")
        if not 0 <= fraud_rate <= 0.5:
            raise ConfigurationError("fraud_rate", f"must be within [0, 0.5], got {fraud_rate}")
        if rate_per_s <= 0:
            raise ConfigurationError("rate_per_s", "must be positive")
        self.seed = seed
        self.fraud_rate = fraud_rate
        self.rate_per_s = rate_per_s
        self.start_ms = today_utc_ms() if start_ms is None else start_ms
        rng = random.Random(f"{seed}:population")
        self.cards = [_make_card(rng, i) for i in range(cards)]
        self.merchants = [_make_merchant(rng, i) for i in range(merchants)]

    def __iter__(self) -> Iterator[Transaction]:
        return _Stream(self).run()

    def take(self, n: int) -> list[Transaction]:
        """The first ``n`` transactions of the stream."""
        return list(itertools.islice(self, n))


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _make_card(rng: random.Random, index: int) -> Card:
    home = _weighted(rng, _HOME_WEIGHTS)
    typical = round(min(400.0, max(5.0, rng.lognormvariate(3.6, 0.7))), 2)
    return Card(f"card-{index:06d}", home, COUNTRIES[home][0], typical)


def _make_merchant(rng: random.Random, index: int) -> Merchant:
    countries = list(COUNTRIES)
    country = _weighted(rng, _HOME_WEIGHTS)
    category = _weighted(rng, _EVERYDAY_CATEGORIES)
    if index < len(countries):
        country = countries[index]
    elif index < MIN_MERCHANTS:
        category = _FIXED_CATEGORIES[index - len(countries)]
    return Merchant(f"merch-{index:05d}", category, country)


class _Stream:
    """One pass over the stream: normal arrivals merged with scheduled fraud events."""

    def __init__(self, spec: TransactionGenerator) -> None:
        self.spec = spec
        self.rng = random.Random(f"{spec.seed}:stream")
        self.clock_ms = float(spec.start_ms)
        self.scheduled: list[tuple[int, int, Transaction]] = []  # (timestamp, seq, tx)
        self.seq = itertools.count()
        self.by_country: dict[str, list[Merchant]] = {}
        self.by_category: dict[str, list[Merchant]] = {}
        for merchant in spec.merchants:
            self.by_country.setdefault(merchant.country, []).append(merchant)
            self.by_category.setdefault(merchant.category, []).append(merchant)
        by_category = self.by_category
        self.burst_merchants = [m for c in _BURST_CATEGORIES for m in by_category[c]]
        self.spike_merchants = [m for c in _SPIKE_CATEGORIES for m in by_category[c]]
        rate = spec.fraud_rate
        self.pattern_chance = rate / (_FRAUD_PER_PATTERN - _EXTRA_PER_PATTERN * rate)

    def run(self) -> Iterator[Transaction]:
        last_ms = 0
        while True:
            self.clock_ms += self.rng.expovariate(self.spec.rate_per_s / 1000.0)
            now = int(self.clock_ms)
            while self.scheduled and self.scheduled[0][0] <= now:
                tx = heapq.heappop(self.scheduled)[2]
                last_ms = tx["timestamp"] = max(tx["timestamp"], last_ms + 1)
                yield tx
            card = self.rng.choice(self.spec.cards)
            if self.rng.random() < self.pattern_chance:
                tx = self._start_pattern(card, now)
            else:
                tx = self._normal(card, now)
            last_ms = tx["timestamp"] = max(now, last_ms + 1)
            yield tx

    def _normal(self, card: Card, now: int) -> Transaction:
        rng = self.rng
        roll = rng.random()
        if roll < 0.001:  # a trip to a high-risk country: a false positive for country rules
            country = rng.choice(sorted(HIGH_RISK_COUNTRIES))
        elif roll < 0.03:  # ordinary travel
            country = rng.choice(list(_HOME_WEIGHTS))
        else:
            country = card.home_country
        amount = card.typical_amount * rng.lognormvariate(0, 0.45)
        if rng.random() < 0.004:  # a rare legitimate big purchase
            amount = card.typical_amount * rng.uniform(4, 10)
        merchant = rng.choice(self.by_country[country])
        return self._tx(card, merchant, amount, now, None)

    def _start_pattern(self, card: Card, now: int) -> Transaction:
        pattern = self.rng.choices(_PATTERNS, weights=_PATTERN_WEIGHTS)[0]
        if pattern == "burst":
            return self._burst(card, now)
        if pattern == "country_hop":
            return self._country_hop(card, now)
        return self._amount_spike(card, now)

    def _burst(self, card: Card, now: int) -> Transaction:
        rng = self.rng
        merchants = self.burst_merchants
        at = now
        for _ in range(rng.randint(5, 12) - 1):
            at += rng.randint(300, 3000)
            self._schedule(self._tx(card, rng.choice(merchants), rng.uniform(1, 20), at, "burst"))
        return self._tx(card, rng.choice(merchants), rng.uniform(1, 20), now, "burst")

    def _country_hop(self, card: Card, now: int) -> Transaction:
        rng = self.rng
        home = COUNTRIES[card.home_country][1]
        if rng.random() < 0.5:
            country = rng.choice(sorted(HIGH_RISK_COUNTRIES))
        else:
            country = rng.choice([c for c in _HOME_WEIGHTS if COUNTRIES[c][1] != home])
        at = now
        for _ in range(rng.choice((1, 2))):
            at += rng.randint(2, 20) * 60_000
            merchant = rng.choice(self.by_country[country])
            amount = card.typical_amount * rng.uniform(1.5, 6)
            self._schedule(self._tx(card, merchant, amount, at, "country_hop"))
        # The legitimate purchase at home that makes the hop impossible.
        merchant = rng.choice(self.by_country[card.home_country])
        amount = card.typical_amount * rng.lognormvariate(0, 0.45)
        return self._tx(card, merchant, amount, now, None)

    def _amount_spike(self, card: Card, now: int) -> Transaction:
        rng = self.rng
        at_home = [m for m in self.spike_merchants if m.country == card.home_country]
        merchant = rng.choice(at_home or self.spike_merchants)
        amount = card.typical_amount * rng.uniform(8, 30)
        return self._tx(card, merchant, amount, now, "amount_spike")

    def _tx(
        self,
        card: Card,
        merchant: Merchant,
        amount: float,
        at: int,
        pattern: FraudPattern | None,
    ) -> Transaction:
        return Transaction(
            transaction_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            card_id=card.card_id,
            merchant_id=merchant.merchant_id,
            merchant_category=merchant.category,
            country=merchant.country,
            amount=round(max(amount, 0.5), 2),
            currency=card.currency,
            timestamp=at,
            is_fraud=pattern is not None,
            fraud_pattern=pattern,
        )

    def _schedule(self, tx: Transaction) -> None:
        heapq.heappush(self.scheduled, (tx["timestamp"], next(self.seq), tx))
