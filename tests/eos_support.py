"""Input, oracle and output checks shared by the exactly-once tests."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import Names, WorkerProcess, consume_all, produce_json

from millstream.config import Settings

EOS = "tests.integration.apps.eos:app"
WINDOW_MS = 10_000
DAY_MS = 24 * 3600 * 1000
# Event times four days back, the closers' one day back: all inside the brokers' default
# 7-day retention. The pipeline writes event times into its repartition and output
# topics, and a broker deletes (even the active) segments whose newest timestamp is
# older than retention.ms as soon as its retention check runs (30 s after it starts,
# then every 5 minutes), which would delete records not yet consumed. Nothing may be in
# the future either: Kafka 4 rejects timestamps more than an hour ahead by default.
_NOW_MS = int(time.time() * 1000)
BASE_TS = _NOW_MS - 4 * DAY_MS - _NOW_MS % WINDOW_MS
CLOSE_TS = BASE_TS + 3 * DAY_MS


@dataclass(frozen=True)
class EosTopics(Names):
    """The names of apps/eos.py: ``out`` takes the enriched records, ``counts`` the
    window counts."""

    counts: str

    @classmethod
    def of(cls, names: Names) -> EosTopics:
        """``names`` with a counts topic named after the output."""
        return cls(names.app, names.source, names.out, f"{names.out}-counts")

    @property
    def enriched(self) -> str:
        """The topic of the enriched records: ``out``."""
        return self.out

    def env(self, bootstrap: str, local_dir: Path | None = None, **extra: str) -> dict[str, str]:
        return super().env(bootstrap, local_dir, TEST_COUNTS=self.counts, **extra)


def transactions(n: int, cards: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            f"txn-{i}",
            {
                "id": i,
                "card": f"card-{i % cards}",
                "amount": (i % 997) / 10,
                "ts": BASE_TS + i * 10,
            },
        )
        for i in range(n)
    ]


def closers(cards: int) -> list[tuple[str, dict[str, Any]]]:
    """One far-future record per card: closes every earlier window of its partition."""
    return [
        (f"close-{c}", {"id": -1, "card": f"card-{c}", "amount": 0.0, "ts": CLOSE_TS})
        for c in range(cards)
    ]


def window_oracle(records: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, int], int]:
    expected: Counter[tuple[str, int]] = Counter()
    for _, v in records:
        expected[(v["card"], v["ts"] - v["ts"] % WINDOW_MS)] += 1
    return dict(expected)


@dataclass
class Outcome:
    enriched_ids: Counter[int]
    windows: Counter[tuple[str, int]]
    values: dict[tuple[str, int], int]
    #: The smallest value emitted per window (differs from ``values`` only when a
    #: window was emitted more than once, which at-least-once allows).
    lowest: dict[tuple[str, int], int] = field(default_factory=dict)

    def duplicates(self) -> int:
        extra_ids = sum(c - 1 for c in self.enriched_ids.values() if c > 1)
        return extra_ids + sum(c - 1 for c in self.windows.values() if c > 1)


def read_outcome(settings: Settings, topics: EosTopics, timeout: float = 60.0) -> Outcome:
    """What a read_committed consumer sees on the two output topics."""
    ids: Counter[int] = Counter(
        i
        for r in consume_all(settings, topics.enriched, timeout=timeout)
        if (i := r.json()["id"]) >= 0
    )
    windows: Counter[tuple[str, int]] = Counter()
    values: dict[tuple[str, int], int] = {}
    lowest: dict[tuple[str, int], int] = {}
    for r in consume_all(settings, topics.counts, timeout=timeout):
        v = r.json()
        key = (r.key.decode(), v["start"])
        windows[key] += 1
        values[key] = v["value"]
        lowest[key] = min(lowest.get(key, v["value"]), v["value"])
    return Outcome(ids, windows, values, lowest)


def start_worker(
    topics: EosTopics, bootstrap: str, local_dir: Path, log: Path, **env: str
) -> WorkerProcess:
    """A worker of apps/eos.py on ``topics``, its state in ``local_dir``, appending to ``log``."""
    return WorkerProcess(EOS, topics.env(bootstrap, local_dir, **env), log)


def feed(settings: Settings, topics: EosTopics, records: list[tuple[str, dict[str, Any]]]) -> None:
    produce_json(settings, topics.source, records)
