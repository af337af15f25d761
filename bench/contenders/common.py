"""What every contender shares: the command line and the per-record work of each scenario.

Standard library only: this module is imported inside the peers' virtualenvs.
"""

from __future__ import annotations

import argparse
from typing import Any

#: Scenarios a contender process can run. ``table`` writes every record into a keyed
#: table (the restore scenario's changelog); only millstream runs it.
SCENARIOS = ("passthrough", "stateless", "window", "table")
GUARANTEES = ("at_least_once", "exactly_once")
STORES = ("memory", "rocksdb")

#: Tumbling window size of the window scenario.
WINDOW_SECONDS = 10
#: Seconds between commits, for every contender that lets it be set.
COMMIT_INTERVAL = 1.0
#: The stateless filter keeps records with at least this amount (75% of them).
MIN_AMOUNT = 25.0


def keep(value: dict[str, Any]) -> bool:
    """The stateless scenario's filter."""
    return bool(value["amount"] >= MIN_AMOUNT)


def enrich(value: dict[str, Any]) -> dict[str, Any]:
    """The stateless scenario's map: a new dict with two derived fields."""
    amount = value["amount"]
    return {**value, "cents": round(amount * 100), "large": amount >= 75.0}


def parse_args(description: str) -> argparse.Namespace:
    """The command line every contender module takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--input", required=True, help="input topic (pre-filled)")
    parser.add_argument("--output", required=True, help="output topic (pre-created)")
    parser.add_argument("--group", required=True, help="consumer group / application id")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--guarantee", choices=GUARANTEES, default="at_least_once")
    parser.add_argument("--store", choices=STORES, default="memory")
    parser.add_argument("--state-dir", required=True, help="a fresh directory for local state")
    return parser.parse_args()
