"""Scoring alerts against the generator's labels: precision and recall per pattern.

Each alert reason targets one pattern (:data:`examples.fraud.rules.REASONS`). For a
pattern P:

- **recall**: the share of transactions labelled P that got an alert, whatever its
  reasons;
- **precision**: the share of alerted transactions with a reason targeting P that
  are fraud (of any pattern: a correct alert for the wrong reason is still correct).

Only transactions whose label has been seen count, so a live view that has read an
alert before its transaction does not count it as wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from examples.fraud.rules import REASONS
from examples.fraud.stream import PATTERNS


@dataclass(frozen=True)
class PatternScore:
    pattern: str
    fraud: int
    caught: int
    alerted: int  # transactions alerted with a reason targeting the pattern
    correct: int  # ... of which fraudulent

    @property
    def recall(self) -> float | None:
        return self.caught / self.fraud if self.fraud else None

    @property
    def precision(self) -> float | None:
        return self.correct / self.alerted if self.alerted else None


@dataclass
class Scoreboard:
    """Labels and alerts as they are read; :meth:`scores` at any moment."""

    labels: dict[str, str | None] = field(default_factory=dict)  # tx id -> pattern or None
    reasons: dict[str, set[str]] = field(default_factory=dict)  # tx id -> alert reasons

    def add_label(self, tx_id: str, pattern: str | None) -> None:
        self.labels[tx_id] = pattern

    def add_alert(self, tx_id: str, reasons: Iterable[str]) -> None:
        self.reasons.setdefault(tx_id, set()).update(reasons)

    def scores(self) -> list[PatternScore]:
        fraud = dict.fromkeys(PATTERNS, 0)
        caught = dict.fromkeys(PATTERNS, 0)
        alerted = dict.fromkeys(PATTERNS, 0)
        correct = dict.fromkeys(PATTERNS, 0)
        for tx_id, pattern in self.labels.items():
            if pattern is not None:
                fraud[pattern] = fraud.get(pattern, 0) + 1
                caught[pattern] = caught.get(pattern, 0) + (tx_id in self.reasons)
        for tx_id, reasons in self.reasons.items():
            if tx_id not in self.labels:
                continue
            for target in {REASONS[r][1] for r in reasons if r in REASONS}:
                alerted[target] += 1
                correct[target] += self.labels[tx_id] is not None
        return [PatternScore(p, fraud[p], caught[p], alerted[p], correct[p]) for p in sorted(fraud)]


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
