"""Resetting a stopped group's committed offsets to the start, the end, or a time.

A reset is planned first (which partitions, from which offset to which), then applied
in one offsets change. Both steps refuse while the group has live members: a running
worker would overwrite the new offsets with its next commit, and the coordinator
rejects offset changes for a group with members anyway. Offsets are looked up as
``kafka-consumer-groups --reset-offsets`` does: ``latest`` is the high watermark, and a
time past a partition's last record resets that partition to its end.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from millstream.config import Settings
from millstream.errors import GroupNotEmptyError, GroupNotFoundError, KafkaError, TopicNotFoundError
from millstream.kafka.admin import TopicAdmin
from millstream.kafka.groups import GroupAdmin, OffsetTarget, Partition


@dataclass(frozen=True)
class ResetChange:
    """One partition's committed offset before (None: nothing committed) and after."""

    topic: str
    partition: int
    old: int | None
    new: int


def parse_target(text: str) -> OffsetTarget:
    """``earliest``, ``latest``, epoch milliseconds (digits), or an ISO-8601 time.

    An ISO time without a UTC offset is taken as UTC, so the same command means the same
    moment on every machine.

    Raises:
        ValueError: the text is none of these (the message says what is accepted).
    """
    word = text.strip().lower()
    if word in ("earliest", "latest"):
        return "earliest" if word == "earliest" else "latest"
    if word.isdigit():
        return int(word)
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not earliest, latest, epoch milliseconds or an ISO-8601 time "
            "(like 2026-12-01T06:30:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    millis = int(moment.timestamp() * 1000)
    if millis < 0:
        raise ValueError(f"{text!r} is before 1970-01-01T00:00:00Z")
    return millis


def plan_reset(
    settings: Settings,
    group: str,
    target: OffsetTarget,
    topics: list[str] | None = None,
    consumed: list[str] | None = None,
) -> list[ResetChange]:
    """The changes a reset of ``group`` to ``target`` makes, without making them.

    The partitions are every partition of ``topics`` when given; else those of
    ``consumed`` (the app's topics, when the app was loaded) and every partition the
    group has committed to.

    Raises:
        GroupNotEmptyError: the group has live members.
        GroupNotFoundError: no topic to reset is known for the group.
        TopicNotFoundError: a topic does not exist.
        KafkaError: an offset could not be looked up (a partition without a leader).
    """
    counts = TopicAdmin(settings).partition_counts()  # first: it reports no broker clearly
    groups = GroupAdmin(settings)
    _refuse_live_members(groups, group)
    committed = groups.committed(group)
    partitions = _partitions(group, counts, committed, topics, consumed)
    offsets = groups.offsets(partitions, target)
    unknown = [f"{t}[{p}]" for (t, p), offset in offsets.items() if offset is None]
    if unknown:
        raise KafkaError(f"no offset could be looked up for {', '.join(sorted(unknown))}")
    return [
        ResetChange(t, p, committed.get((t, p)), offset)
        for (t, p), offset in sorted(offsets.items())
        if offset is not None
    ]


def reset_offsets(settings: Settings, group: str, changes: list[ResetChange]) -> None:
    """Commit the new offsets of ``changes`` for ``group``, in one request.

    Raises:
        GroupNotEmptyError: the group has live members (checked again first).
        KafkaError: the coordinator refused the change.
    """
    groups = GroupAdmin(settings)
    _refuse_live_members(groups, group)
    groups.alter(group, {(c.topic, c.partition): c.new for c in changes})


def _refuse_live_members(groups: GroupAdmin, group: str) -> None:
    members = groups.describe(group).members
    if members:
        clients = ", ".join(sorted({f"{m.client_id} on {m.host}" for m in members}))
        raise GroupNotEmptyError(
            f"group {group!r} has {len(members)} live member(s) ({clients}): stop its "
            "workers before resetting its offsets",
            code="NON_EMPTY_GROUP",
        )


def _partitions(
    group: str,
    counts: dict[str, int],
    committed: dict[Partition, int],
    topics: list[str] | None,
    consumed: list[str] | None,
) -> list[Partition]:
    if topics:
        missing = [t for t in topics if t not in counts]
        if missing:
            raise TopicNotFoundError(f"topic {missing[0]!r} does not exist")
        return [(t, p) for t in sorted(set(topics)) for p in range(counts[t])]
    names = {t for t in consumed or [] if t in counts}
    chosen = {(t, p) for t in names for p in range(counts[t])}
    chosen |= {(t, p) for t, p in committed if t in counts and p < counts[t]}
    if not chosen:
        raise GroupNotFoundError(
            f"nothing to reset: group {group!r} has no committed offsets (name the topics "
            "with --topic, or the app as module:attribute)",
            code="GROUP_ID_NOT_FOUND",
        )
    return sorted(chosen)
