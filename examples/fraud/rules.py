"""The live detectors' logic, as plain functions of plain values.

:mod:`examples.fraud.detectors` wires these into millstream steps; here they take
and return JSON values, so they are tested without a worker. The reasons an alert
gives, and the pattern of the generator (:mod:`examples.fraud.stream`) each one is
meant to catch:

- ``card_testing``: 3 small online purchases within 3 s, in a session window of
  the card (pattern ``card_testing``);
- ``velocity``: more purchases in 1 minute, or in 10, than a person makes
  (``card_testing``);
- ``amount_spike``: the amount's z-score against the card's running mean and
  variance, kept in a table (``amount_spike``);
- ``impossible_travel``: a shop in another region of the world soon after one in
  the card's home region (``impossible_travel``);
- ``blocklisted_merchant``: the merchant is in the blocklist, a global table
  (``blocklisted_merchant``);
- ``night_time``: 3 times the card's mean amount on resellable goods, in the small
  hours of the card's time zone (``night_time``).
"""

from __future__ import annotations

import math
from typing import Any

from examples.fraud.stream import NIGHT_HOURS, ONLINE, local_hour, region

#: Reason -> weight in the alert score (capped at 1.0) and the pattern it targets.
REASONS: dict[str, tuple[float, str]] = {
    "card_testing": (0.8, "card_testing"),
    "velocity": (0.4, "card_testing"),
    "amount_spike": (0.7, "amount_spike"),
    "impossible_travel": (0.9, "impossible_travel"),
    "blocklisted_merchant": (1.0, "blocklisted_merchant"),
    "night_time": (0.6, "night_time"),
}
#: Purchases of a card before its amount statistics are trusted.
MIN_HISTORY = 3
#: An amount this many (floored) standard deviations above the card's mean is a spike.
SPIKE_Z = 12.0
#: The standard deviation is at least this share of the mean: a card with a few very
#: similar amounts must not make every slightly larger one a spike.
STD_FLOOR = 0.5
NIGHT_FACTOR = 3.0
#: What is bought with a stolen card while its holder sleeps: goods easy to resell.
NIGHT_CATEGORIES = frozenset({"electronics", "jewelry", "travel"})
#: Longest believable time between a purchase in the home region and one in another.
TRAVEL_WINDOW_MS = 2 * 3600 * 1000
SMALL_ONLINE = 5.0
BURST_SPAN_MS = 3000
BURST_SIZE = 3
VELOCITY_1M = 150
VELOCITY_10M = 1000


# -- per-card profile (a table of the processor) ---------------------------------------


def new_profile() -> dict[str, Any]:
    return {"n": 0, "mean": 0.0, "m2": 0.0, "countries": {}, "home_ts": None}


def home_of(profile: dict[str, Any]) -> str | None:
    countries: dict[str, int] = profile["countries"]
    return max(countries, key=lambda c: countries[c]) if countries else None


def zscore(profile: dict[str, Any], amount: float) -> float | None:
    """How far ``amount`` lies above the card's mean, in floored standard deviations."""
    n, mean = profile["n"], profile["mean"]
    if n < MIN_HISTORY or mean <= 0:
        return None
    std = math.sqrt(profile["m2"] / (n - 1)) if n > 1 else 0.0
    return float((amount - mean) / max(std, STD_FLOOR * mean))


def profile_signals(profile: dict[str, Any], tx: dict[str, Any]) -> dict[str, Any]:
    """The signals of ``tx`` against the card's history (before ``tx`` is added)."""
    z = zscore(profile, tx["amount"])
    home = home_of(profile)
    travel = False
    if home is not None and tx["merchant_category"] not in ONLINE:
        recent = (
            profile["home_ts"] is not None
            and tx["timestamp"] - profile["home_ts"] <= TRAVEL_WINDOW_MS
        )
        travel = recent and region(tx["country"]) != region(home)
    night = local_hour(tx["timestamp"], tx["utc_offset_min"]) in NIGHT_HOURS
    big_at_night = (
        night
        and tx["merchant_category"] in NIGHT_CATEGORIES
        and profile["n"] >= MIN_HISTORY
        and tx["amount"] >= NIGHT_FACTOR * profile["mean"]
    )
    return {
        "zscore": None if z is None else round(z, 2),
        "spike": z is not None and z >= SPIKE_Z,
        "travel": travel,
        "night": big_at_night,
    }


def update_profile(profile: dict[str, Any], tx: dict[str, Any], signals: dict[str, Any]) -> None:
    """Add ``tx`` to the card's history; spikes do not move the statistics (a thief's
    purchase must not make the next one look normal)."""
    if not signals["spike"]:
        profile["n"] += 1
        delta = tx["amount"] - profile["mean"]
        profile["mean"] += delta / profile["n"]
        profile["m2"] += delta * (tx["amount"] - profile["mean"])
    # Where a card is used in person tells where its holder is; an online shop's
    # country does not, nor does a purchase that looked like impossible travel.
    if not signals["travel"] and tx["merchant_category"] not in ONLINE:
        countries = profile["countries"]
        countries[tx["country"]] = countries.get(tx["country"], 0) + 1
    home = home_of(profile)
    if home is not None and region(tx["country"]) == region(home):
        profile["home_ts"] = tx["timestamp"]


# -- session windows: bursts of small online purchases ----------------------------------


def is_small_online(tx: dict[str, Any]) -> bool:
    return tx["merchant_category"] in ONLINE and tx["amount"] <= SMALL_ONLINE


def session_add(acc: dict[str, Any], tx: dict[str, Any]) -> dict[str, Any]:
    """Add a transaction to a card's session: its count, its recent small online
    purchases (within :data:`BURST_SPAN_MS` of the newest), and the transaction itself."""
    small = list(acc.get("small", []))
    if is_small_online(tx):
        small.append([tx["transaction_id"], tx["timestamp"], tx["amount"], tx["merchant_id"]])
    newest = tx["timestamp"]
    small = [s for s in small if newest - s[1] <= BURST_SPAN_MS]
    return {"n": acc.get("n", 0) + 1, "small": small, "tx": tx}


def session_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {
        "n": a.get("n", 0) + b.get("n", 0),
        "small": a.get("small", []) + b.get("small", []),
        "tx": b.get("tx"),
    }


def after_session(result: dict[str, Any]) -> dict[str, Any]:
    """The transaction out of a session result, with the session's signals."""
    acc = result["value"]
    tx = dict(acc["tx"])
    small = acc["small"]
    burst = is_small_online(tx) and len(small) >= BURST_SIZE
    tx["session"] = {"start": result["start"], "n": acc["n"], "burst": burst}
    # The earlier purchases of a burst are alerted once, when the burst is recognised.
    tx["burst_earlier"] = small[:-1] if burst and len(small) == BURST_SIZE else []
    return tx


# -- velocity windows ------------------------------------------------------------------


def count_add(acc: dict[str, Any], tx: dict[str, Any]) -> dict[str, Any]:
    return {"n": acc.get("n", 0) + 1, "tx": tx}


def after_count(field: str) -> Any:
    def take(result: dict[str, Any]) -> dict[str, Any]:
        tx = dict(result["value"]["tx"])
        tx[field] = result["value"]["n"]
        return tx

    return take


# -- the rule step -----------------------------------------------------------------------


def reasons_of(tx: dict[str, Any]) -> list[str]:
    signals = tx["signals"]
    fired = {
        "card_testing": tx["session"]["burst"],
        "velocity": tx.get("velocity_1m", 0) > VELOCITY_1M
        or tx.get("velocity_10m", 0) > VELOCITY_10M,
        "amount_spike": signals["spike"],
        "impossible_travel": signals["travel"],
        "blocklisted_merchant": bool(tx.get("blocklisted")),
        "night_time": signals["night"],
    }
    return [reason for reason, yes in fired.items() if yes]


def score_of(reasons: list[str]) -> float:
    return round(min(1.0, sum(REASONS[r][0] for r in reasons)), 2)


def decide(tx: dict[str, Any]) -> list[dict[str, Any]]:
    """One scored row for ``tx`` (``decision`` ``alert`` or ``pass``), and alert rows
    for the earlier purchases of a burst it revealed."""
    reasons = reasons_of(tx)
    rows = [
        {
            "transaction_id": tx["transaction_id"],
            "card_id": tx["card_id"],
            "merchant_id": tx["merchant_id"],
            "country": tx["country"],
            "amount": tx["amount"],
            "event_time": tx["timestamp"],
            "decision": "alert" if reasons else "pass",
            "reasons": reasons,
            "score": score_of(reasons),
            "zscore": tx["signals"]["zscore"],
            "velocity_1m": tx.get("velocity_1m"),
            "velocity_10m": tx.get("velocity_10m"),
        }
    ]
    # Only the columns known here: an upsert keeps the others of the row as they were.
    for tx_id, at, amount, merchant in tx.get("burst_earlier", []):
        rows.append(
            {
                "transaction_id": tx_id,
                "card_id": tx["card_id"],
                "merchant_id": merchant,
                "amount": amount,
                "event_time": at,
                "decision": "alert",
                "reasons": ["card_testing"],
                "score": score_of(["card_testing"]),
            }
        )
    return rows
