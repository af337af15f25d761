"""Restore progress as workers report it: the commits their restore consumers make to
the group ``{app_id}-restore``, one per changelog partition (the format is
processors/state/restore_report.py's).

A report whose position reached its target is a finished restore; the others are in
progress, or were cut short (the worker died or lost the partition): their age says
which.
"""

from __future__ import annotations

from millstream.kafka.groups import Partition
from millstream.processors.state.restore_report import RestoreProgress, restore_group


def parse_reports(committed: dict[Partition, tuple[int, str | None]]) -> list[RestoreProgress]:
    """The restore reports among ``committed`` (offset and metadata per partition), in
    partition order; commits whose metadata is not a report are left out."""
    found = []
    for (topic, partition), (offset, metadata) in sorted(committed.items()):
        report = RestoreProgress.parse(topic, partition, offset, metadata)
        if report is not None:
            found.append(report)
    return found


__all__ = ["RestoreProgress", "parse_reports", "restore_group"]
