"""Restore progress as workers report it: the commits their restore consumers make to
the group ``{app_id}-restore`` (processors/state/restore_report.py), one per changelog
partition, with the replay's start, target, host, pid and time in the metadata.

A report whose position reached its target is a finished restore; the others are in
progress, or were cut short (the worker died or lost the partition): their age says
which.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from millstream.kafka.groups import Partition


@dataclass(frozen=True)
class RestoreProgress:
    """One changelog partition's restore as last reported: replayed from ``start`` up to
    ``position`` of ``target``, by ``host``/``pid``, at ``reported_at`` (epoch ms)."""

    changelog: str
    partition: int
    start: int
    position: int
    target: int
    host: str
    pid: int
    reported_at: int

    @property
    def done(self) -> bool:
        return self.position >= self.target

    @property
    def fraction(self) -> float:
        """Share of the replay done, 0.0 to 1.0."""
        span = self.target - self.start
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.position - self.start) / span))


def restore_group(app_id: str) -> str:
    """The group a worker of ``app_id`` reports its restores to."""
    return f"{app_id}-restore"


def parse_reports(committed: dict[Partition, tuple[int, str | None]]) -> list[RestoreProgress]:
    """The restore reports among ``committed`` (offset and metadata per partition); commits
    whose metadata is not a report are left out."""
    found = []
    for (topic, partition), (offset, metadata) in sorted(committed.items()):
        try:
            data = orjson.loads(metadata or "")
            report = RestoreProgress(
                changelog=topic,
                partition=partition,
                start=int(data["start"]),
                position=offset,
                target=int(data["target"]),
                host=str(data["host"]),
                pid=int(data["pid"]),
                reported_at=int(data["at"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        found.append(report)
    return found
