"""A live stream of card transactions with five fraud patterns, labelled in headers.

The live demo's source: transactions stamped with the wall clock as they are made,
at a set rate, keyed by card id. The detectors see only the transaction; its label
travels in record headers (``fraud.label`` ``"1"``/``"0"``, and ``fraud.pattern``
for fraud), where the scorer reads it.

Patterns (the labels of ``fraud.pattern``):

- ``card_testing``: 4-10 tiny online purchases on one card, 80-400 ms apart;
- ``impossible_travel``: a purchase at home, then one or two in a shop of another
  region of the world a few seconds later;
- ``amount_spike``: one purchase 10-30 times the card's typical amount;
- ``blocklisted_merchant``: a purchase at a merchant put on the blocklist, which
  is published live on its own topic (a few merchants at the start, one more
  every ``BLOCKLIST_EVERY`` seconds);
- ``night_time``: a large purchase (4.5-10 times typical) in the small hours of
  the cardholder's own time zone.

Noise makes the rules imperfect: rare legitimate large purchases (2-7.5 times
typical, also at night), shopping across a border of the same region, online
purchases from abroad, and small online purchases. Cards live in 24 time zones
(``utc_offset_min`` in each transaction), so some are at night whenever the demo
runs; a card at night shops less. Same seed, same sequence of choices; event times
come from the clock, so two runs differ in time only.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from millstream.producers.generators import COUNTRIES

CARD_PRESENT = ("grocery", "restaurant", "fuel", "pharmacy", "clothing", "electronics", "jewelry")
ONLINE = ("digital_goods", "entertainment")
SPIKE_CATEGORIES = ("electronics", "jewelry", "travel")
CATEGORY_WEIGHTS = {
    "grocery": 30, "restaurant": 20, "fuel": 12, "pharmacy": 6, "clothing": 10,
    "entertainment": 7, "digital_goods": 6, "electronics": 4, "travel": 3, "jewelry": 2,
}  # fmt: skip
HOMES = ("US", "CA", "GB", "IE", "DE", "FR", "NL", "ES", "IT", "CH", "AU", "NZ", "SG")
#: Chance that an arrival starts each pattern (card testing brings 7 fraud records each).
PATTERN_CHANCE = {
    "card_testing": 0.0015,
    "impossible_travel": 0.002,
    "amount_spike": 0.004,
    "blocklisted_merchant": 0.003,
    "night_time": 0.003,
}
PATTERNS = tuple(PATTERN_CHANCE)
#: Seconds between two merchants put on the blocklist, and merchants listed at the start.
BLOCKLIST_EVERY = 15.0
BLOCKLIST_AT_START = 4
#: Seconds after its listing before fraud uses a merchant: the blocklist reaches the
#: workers first (a listing is news for transactions after it, not before).
BLOCKLIST_SETTLE = 2.0
#: Local hours that count as night, and how much less a card shops then.
NIGHT_HOURS = range(0, 5)
NIGHT_ACTIVITY = 0.15


@dataclass(frozen=True)
class Card:
    card_id: str
    home: str
    typical: float
    utc_offset_min: int


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    category: str
    country: str


@dataclass(frozen=True)
class Event:
    """One record to publish: a transaction (with its label) or a blocklist entry."""

    topic: str  # "transactions" or "blocklist"
    key: str
    value: dict[str, Any]
    pattern: str | None = None


def local_hour(timestamp_ms: int, utc_offset_min: int) -> int:
    """The hour of day at ``utc_offset_min`` from UTC at ``timestamp_ms``."""
    return (timestamp_ms // 60_000 + utc_offset_min) // 60 % 24


def region(country: str) -> str:
    return COUNTRIES[country][1]


@dataclass
class LiveGenerator:
    """Makes the transactions of a live run; :meth:`arrivals` and :meth:`due` are paced
    by the caller, who passes the current time (epoch ms) in."""

    seed: int = 0
    cards: int = 2000
    merchants: int = 600
    rng: random.Random = field(init=False)
    population: list[Card] = field(init=False)
    shops: list[Merchant] = field(init=False)
    listed: dict[str, float] = field(init=False, default_factory=dict)  # id -> since (ms)
    _scheduled: list[tuple[int, int, Event]] = field(init=False, default_factory=list)
    _seq: Iterator[int] = field(init=False, default_factory=itertools.count)
    _weights_at: int = field(init=False, default=-1)
    _weights: list[float] = field(init=False, default_factory=list)
    _index: dict[tuple[str | None, str | None], list[Merchant]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        rng = self.rng
        self.population = [
            Card(
                f"card-{i:06d}",
                rng.choice(HOMES),
                round(min(400.0, max(5.0, rng.lognormvariate(3.6, 0.7))), 2),
                rng.randrange(-11, 13) * 60,
            )
            for i in range(self.cards)
        ]
        # Every country has a shop of every category, then more of the common ones.
        categories, weights = list(CATEGORY_WEIGHTS), list(CATEGORY_WEIGHTS.values())
        kinds = [(country, category) for country in COUNTRIES for category in categories]
        while len(kinds) < self.merchants:
            kinds.append((rng.choice(list(COUNTRIES)), rng.choices(categories, weights)[0]))
        self.shops = [
            Merchant(f"merch-{i:05d}", category, country)
            for i, (country, category) in enumerate(kinds)
        ]

    # -- the blocklist ---------------------------------------------------------------

    def list_merchant(self, now_ms: int) -> Event:
        """Put one more merchant on the blocklist: the entry to publish."""
        # Never one of the first shops, the one of each category in each country.
        common = self.shops[len(COUNTRIES) * len(CATEGORY_WEIGHTS) :]
        candidates = [m for m in common if m.merchant_id not in self.listed]
        merchant = self.rng.choice(candidates)
        self.listed[merchant.merchant_id] = now_ms
        value = {"merchant_id": merchant.merchant_id, "reason": "compromised", "since": now_ms}
        return Event("blocklist", merchant.merchant_id, value)

    def _usable_listed(self, now_ms: int) -> list[str]:
        settle = BLOCKLIST_SETTLE * 1000
        return [m for m, since in self.listed.items() if now_ms - since >= settle]

    # -- transactions ----------------------------------------------------------------

    def warm_up(self, now_ms: int, per_card: int) -> list[Event]:
        """``per_card`` ordinary purchases of every card: history for the profiles."""
        return [self._normal(card, now_ms) for card in self.population for _ in range(per_card)]

    def arrivals(self, count: int, now_ms: int) -> list[Event]:
        """``count`` new arrivals at ``now_ms``: ordinary purchases, or the start of a pattern."""
        out = []
        for _ in range(count):
            roll = self.rng.random()
            for pattern in PATTERNS:
                roll -= PATTERN_CHANCE[pattern]
                if roll < 0:
                    out.append(self._start(pattern, now_ms))
                    break
            else:
                out.append(self._normal(self._pick_card(now_ms), now_ms))
        return out

    def due(self, now_ms: int) -> list[Event]:
        """The follow-ups of patterns (burst members, hops) due by ``now_ms``, stamped now."""
        out = []
        while self._scheduled and self._scheduled[0][0] <= now_ms:
            event = heapq.heappop(self._scheduled)[2]
            event.value["timestamp"] = now_ms
            out.append(event)
        return out

    def pending(self) -> bool:
        """Whether follow-ups of patterns are still scheduled."""
        return bool(self._scheduled)

    def _pick_card(self, now_ms: int) -> Card:
        minute = now_ms // 60_000
        if minute != self._weights_at:
            self._weights_at = minute
            self._weights = [
                NIGHT_ACTIVITY if local_hour(now_ms, c.utc_offset_min) in NIGHT_HOURS else 1.0
                for c in self.population
            ]
        return self.rng.choices(self.population, self._weights)[0]

    def _normal(self, card: Card, now_ms: int) -> Event:
        rng = self.rng
        roll = rng.random()
        category = rng.choices(list(CATEGORY_WEIGHTS), list(CATEGORY_WEIGHTS.values()))[0]
        country = card.home
        online_abroad = roll < 0.005  # an online purchase from a shop anywhere
        if online_abroad:
            category = rng.choice(ONLINE)
        elif roll < 0.035:  # across a border of the home region
            country = rng.choice([c for c in HOMES if region(c) == region(card.home)])
        amount = card.typical * rng.lognormvariate(0, 0.45)
        if category in ONLINE and rng.random() < 0.3:
            amount = rng.uniform(1, 15)
        if rng.random() < 0.003:  # a rare legitimate big purchase
            amount = card.typical * rng.uniform(2, 7.5)
        shop = self._shop(None if online_abroad else country, category, now_ms)
        return self._tx(card, shop, amount, now_ms, None)

    def _start(self, pattern: str, now_ms: int) -> Event:
        card = self._pick_card(now_ms)
        if pattern == "card_testing":
            return self._card_testing(card, now_ms)
        if pattern == "impossible_travel":
            return self._travel(card, now_ms)
        if pattern == "amount_spike":
            shop = self._shop(card.home, self.rng.choice(SPIKE_CATEGORIES), now_ms)
            amount = card.typical * self.rng.uniform(10, 30)
            return self._tx(card, shop, amount, now_ms, pattern)
        if pattern == "blocklisted_merchant":
            usable = self._usable_listed(now_ms)
            if not usable:
                return self._normal(card, now_ms)
            chosen = self.rng.choice(usable)
            shop = next(m for m in self.shops if m.merchant_id == chosen)
            return self._tx(
                card, shop, card.typical * self.rng.lognormvariate(0, 0.45), now_ms, pattern
            )
        return self._night(now_ms)

    def _card_testing(self, card: Card, now_ms: int) -> Event:
        rng, at = self.rng, now_ms
        for _ in range(rng.randint(4, 10) - 1):
            at += rng.randint(80, 400)
            shop = self._shop(None, "digital_goods", now_ms)
            self._schedule(at, self._tx(card, shop, rng.uniform(0.5, 5), at, "card_testing"))
        shop = self._shop(None, "digital_goods", now_ms)
        return self._tx(card, shop, rng.uniform(0.5, 5), now_ms, "card_testing")

    def _travel(self, card: Card, now_ms: int) -> Event:
        rng, at = self.rng, now_ms
        abroad = rng.choice([c for c in COUNTRIES if region(c) != region(card.home)])
        for _ in range(rng.choice((1, 2))):
            at += rng.randint(1000, 8000)
            shop = self._shop(abroad, rng.choice(CARD_PRESENT), now_ms)
            amount = card.typical * rng.uniform(1.5, 6)
            self._schedule(at, self._tx(card, shop, amount, at, "impossible_travel"))
        # The legitimate purchase at home that makes the hop impossible.
        return self._normal(card, now_ms)

    def _night(self, now_ms: int) -> Event:
        night = [c for c in self.population if local_hour(now_ms, c.utc_offset_min) in NIGHT_HOURS]
        card = self.rng.choice(night)
        shop = self._shop(card.home, self.rng.choice(("electronics", "jewelry")), now_ms)
        amount = card.typical * self.rng.uniform(4.5, 10)
        return self._tx(card, shop, amount, now_ms, "night_time")

    def _shop(self, country: str | None, category: str, now_ms: int) -> Merchant:
        """A merchant of ``category`` in ``country`` (anywhere: None) not on the blocklist;
        of another category when ``country`` has none of this one."""
        if not self._index:
            for m in self.shops:
                self._index.setdefault((m.country, m.category), []).append(m)
                self._index.setdefault((None, m.category), []).append(m)
                self._index.setdefault((m.country, None), []).append(m)
        choices = self._index.get((country, category)) or self._index[(country, None)]
        while True:  # ends: the first shop of each category and country is never listed
            merchant = self.rng.choice(choices)
            if merchant.merchant_id not in self.listed:
                return merchant

    def _tx(self, card: Card, shop: Merchant, amount: float, at: int, pattern: str | None) -> Event:
        value = {
            "transaction_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "card_id": card.card_id,
            "merchant_id": shop.merchant_id,
            "merchant_category": shop.category,
            "country": shop.country,
            "amount": round(max(amount, 0.5), 2),
            "currency": COUNTRIES[card.home][0],
            "timestamp": at,
            "utc_offset_min": card.utc_offset_min,
        }
        return Event("transactions", card.card_id, value, pattern)

    def _schedule(self, at: int, event: Event) -> None:
        heapq.heappush(self._scheduled, (at, next(self._seq), event))


def read_label(headers: Any) -> tuple[bool, str | None]:
    """``(labelled, pattern)`` from the headers of a consumed transaction."""
    found = dict(headers or [])
    pattern = found.get("fraud.pattern")
    if isinstance(pattern, bytes):
        pattern = pattern.decode()
    return "fraud.label" in found, pattern


def label_headers(pattern: str | None) -> list[tuple[str, str | bytes | None]]:
    """The ground truth of a transaction, as record headers."""
    if pattern is None:
        return [("fraud.label", "0")]
    return [("fraud.label", "1"), ("fraud.pattern", pattern)]


@dataclass
class StreamCounts:
    """What a live run published."""

    transactions: int = 0
    fraud: dict[str, int] = field(default_factory=dict)  # pattern -> transactions
    listings: int = 0

    def add(self, event: Event) -> None:
        if event.topic == "blocklist":
            self.listings += 1
            return
        self.transactions += 1
        if event.pattern is not None:
            self.fraud[event.pattern] = self.fraud.get(event.pattern, 0) + 1
