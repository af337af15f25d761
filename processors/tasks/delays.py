"""Delay tiers: topics where tasks wait until they are due, with no polling.

A tier is a topic ``{app_id}-delay-{name}`` whose records all wait the same time
*D*, counted from their timestamp. Because the wait is the same for every record,
the records of a partition fall due in order, and the partition's head record is
the next one due: the worker forwards what is due and pauses the partition until
the head's time comes. A forwarded record goes to the largest tier not longer
than its remaining wait, or to its task topic once that is under a second (the
task's dispatcher holds it for the rest). Retries and ``delay=`` both travel this
way, so a long delay is a few hops and never a second run.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from millstream.kafka import ConsumedRecord
from millstream.processors.assigned import AssignedPartition
from millstream.processors.state.store import StorePartition

#: The tiers, shortest first: (seconds, name).
TIERS: tuple[tuple[float, str], ...] = (
    (1.0, "1s"),
    (10.0, "10s"),
    (60.0, "1m"),
    (600.0, "10m"),
    (3600.0, "1h"),
)
_SECONDS = dict((name, seconds) for seconds, name in TIERS)


def tier_for(remaining: float) -> str | None:
    """The tier for a record that must wait ``remaining`` more seconds: the longest
    not longer than that, or None when it is under the shortest."""
    chosen = None
    for seconds, name in TIERS:
        if seconds <= remaining:
            chosen = name
    return chosen


def delay_topic(app_id: str, tier: str) -> str:
    return f"{app_id}-delay-{tier}"


def tier_topics(app_id: str) -> dict[str, float]:
    """Every tier topic of an app, with its wait in seconds."""
    return {delay_topic(app_id, name): seconds for seconds, name in TIERS}


def tier_seconds(tier: str) -> float:
    return _SECONDS[tier]


class DelayPartition(AssignedPartition):
    """A partition of a delay tier: records consumed but not yet due wait in ``held``,
    in offset order, and the partition's position stays at the first of them."""

    __slots__ = ("_consumed_to", "held")

    def __init__(
        self,
        topic: str,
        partition: int,
        stores: dict[str, StorePartition] | None = None,
        *,
        purgeable: bool = False,
    ) -> None:
        super().__init__(topic, partition, stores, purgeable=purgeable)
        self.held: deque[ConsumedRecord] = deque()
        self._consumed_to: int | None = None

    def processed(self, next_offset: int) -> None:
        self._consumed_to = next_offset
        if not self.held:
            self._next_offset = next_offset

    def hold(self, records: list[ConsumedRecord]) -> None:
        """Keep ``records`` (consumed, not yet due) until they are forwarded."""
        if records:
            self.held.extend(records)
            self._next_offset = self.held[0].offset()

    def forwarded(self) -> ConsumedRecord:
        """The head record went on: the position moves past it."""
        record = self.held.popleft()
        self._next_offset = self.held[0].offset() if self.held else self._consumed_to
        return record

    def discard(self) -> None:
        super().discard()
        self.held.clear()
        self._consumed_to = self._next_offset


def due_at(record: ConsumedRecord, wait: float) -> float:
    """Epoch seconds when ``record`` of a tier that waits ``wait`` seconds falls due."""
    timestamp: Any = record.timestamp()[1]
    return float(timestamp) / 1000.0 + wait
