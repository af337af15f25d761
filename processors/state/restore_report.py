"""Restore progress, reported where ``millstream status`` can read it.

While a worker restores store partitions, its restore consumer commits how far each
changelog partition has been replayed to the group ``{app_id}-restore``, at most once
a second and once more at the end. The commit's metadata says where the replay
started, where it ends, who restores it and when it last said so (JSON)::

    {"start": 0, "target": 120000, "host": "worker-1", "pid": 4242, "at": 1764550000000}

Those commits are only a report: the restore consumer never reads them back (it
starts from the store's own checkpointed position), so a failed or lost report costs
nothing but a stale status line. Reports are asynchronous and never block a restore.
This module owns the format: :class:`RestoreReport` writes it, :meth:`RestoreProgress.parse`
reads it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from millstream.kafka import Consumer, TopicPartition

log = logging.getLogger("millstream.restore")

#: Seconds between two progress reports of one restore.
REPORT_INTERVAL = 1.0


def restore_group(app_id: str) -> str:
    """The group the restore consumers of ``app_id``'s workers report to."""
    return f"{app_id}-restore"


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

    @classmethod
    def parse(
        cls, changelog: str, partition: int, offset: int, metadata: str | None
    ) -> RestoreProgress | None:
        """The report a commit of ``offset`` with ``metadata`` makes; None when the
        metadata is not a report."""
        try:
            data = orjson.loads(metadata or "")
            return cls(
                changelog=changelog,
                partition=partition,
                start=int(data["start"]),
                position=offset,
                target=int(data["target"]),
                host=str(data["host"]),
                pid=int(data["pid"]),
                reported_at=int(data["at"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


class RestoreReport:
    """Commits restore progress through the restore consumer (see the module docstring)."""

    def __init__(self, consumer: Consumer, interval: float = REPORT_INTERVAL) -> None:
        self._consumer = consumer
        self._interval = interval
        self._next = 0.0
        self._who = {"host": socket.gethostname(), "pid": os.getpid()}

    def progress(self, replays: Iterable[tuple[str, int, int, int, int]], *, final: bool) -> None:
        """Report (changelog, partition, start, position, target) of each replay: now when
        ``final``, else when the last report is at least ``interval`` old."""
        now = time.monotonic()
        if not final and now < self._next:
            return
        self._next = now + self._interval
        at = int(time.time() * 1000)
        offsets = [
            TopicPartition(topic, partition, position, metadata=self._metadata(start, target, at))
            for topic, partition, start, position, target in replays
        ]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as exc:  # a report must never fail a restore
            log.debug("restore progress not reported: %s", exc)

    def _metadata(self, start: int, target: int, at: int) -> str:
        return orjson.dumps({"start": start, "target": target, **self._who, "at": at}).decode()
