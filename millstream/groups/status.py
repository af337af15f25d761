"""The status of an app's consumer group: state, members, and per-partition lag.

Lag is computed exactly as ``kafka-consumer-groups --describe`` computes it: the
partition's end offset (its high watermark, read with READ_UNCOMMITTED isolation, so a
transaction's commit marker counts) minus the group's committed offset. A partition
without a committed offset has no lag (None; the tool prints ``-``); neither has one
whose end offset could not be read. Every partition of every topic the group consumes
is listed, committed or not, so a partition nobody has committed to yet shows up too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from millstream.config import Settings
from millstream.errors import GroupNotFoundError
from millstream.groups.restores import RestoreProgress, parse_reports, restore_group
from millstream.kafka.admin import TopicAdmin
from millstream.kafka.groups import GroupAdmin, GroupDescription, GroupMember, Partition
from millstream.processors.tasks.delays import tier_topics
from millstream.processors.topology import Topology

#: What a consumed topic is to the app.
KINDS = ("source", "repartition", "task", "delay")


@dataclass(frozen=True)
class PartitionLag:
    """One partition the group consumes. ``committed`` is the next offset the group will
    read (None: nothing committed), ``end`` the high watermark (None: unknown)."""

    topic: str
    partition: int
    committed: int | None
    end: int | None
    lag: int | None


@dataclass(frozen=True)
class MemberStatus:
    """A live member: its client id and host, the partitions it holds, and those assigned
    to it that it has not taken yet (restoring state, or being handed over)."""

    member_id: str
    client_id: str
    host: str
    instance_id: str | None
    partitions: list[Partition]
    pending: list[Partition]


@dataclass(frozen=True)
class DeadLetterSize:
    """The dead-letter topic and the offsets it holds (records; under exactly-once also
    transaction markers). ``records`` is None when the topic does not exist."""

    topic: str
    records: int | None


@dataclass(frozen=True)
class GroupStatus:
    """Everything ``millstream status`` shows for one group, as of one reading."""

    group: str
    state: str
    protocol: str
    assignor: str
    members: list[MemberStatus]
    #: consumed topic -> its kind (one of KINDS)
    topics: dict[str, str]
    partitions: list[PartitionLag]
    dlq: DeadLetterSize
    #: consumed topics that do not exist on the cluster
    missing_topics: list[str] = field(default_factory=list)
    #: restores as the workers last reported them, unfinished ones (in progress or cut
    #: short) only
    restores: list[RestoreProgress] = field(default_factory=list)

    @property
    def total_lag(self) -> int:
        """The sum of the known lags."""
        return sum(p.lag for p in self.partitions if p.lag is not None)

    def owner(self, partition: Partition) -> MemberStatus | None:
        """The member holding ``partition`` now, if any."""
        for member in self.members:
            if partition in member.partitions:
                return member
        return None

    def as_json(self) -> dict[str, Any]:
        """The status as JSON-ready data: group-level fields, then ``partitions`` as
        objects with exactly ``topic``, ``partition``, ``committed``, ``end``, ``lag``."""
        data = asdict(self)
        data["total_lag"] = self.total_lag
        for member in data["members"]:
            member["partitions"] = [list(p) for p in member["partitions"]]
            member["pending"] = [list(p) for p in member["pending"]]
        return data


def lag(committed: int | None, end: int | None) -> int | None:
    """``end - committed``, as Kafka's group tool computes it; None when either is unknown."""
    if committed is None or committed < 0 or end is None:
        return None
    return end - committed


def consumed_topics(topology: Topology) -> dict[str, str]:
    """Every topic the app's workers subscribe to, with its kind: task topics, delay tiers,
    repartition topics, and sources (the rest)."""
    delays = set(tier_topics(topology.app_id)) if topology.tasks else set()
    tasks = {task.topic for task in topology.tasks.values()}
    repartitions = topology.repartition_topics()
    kinds: dict[str, str] = {}
    for name in topology.sources:
        if name in tasks:
            kinds[name] = "task"
        elif name in delays:
            kinds[name] = "delay"
        elif name in repartitions:
            kinds[name] = "repartition"
        else:
            kinds[name] = "source"
    return kinds


def guess_kind(app_id: str, topic: str) -> str:
    """The kind of a topic known only by name, from millstream's naming of internal topics."""
    if topic.startswith(f"{app_id}-") and topic.endswith("-repartition"):
        return "repartition"
    if topic.startswith(f"{app_id}-task-"):
        return "task"
    if topic.startswith(f"{app_id}-delay-"):
        return "delay"
    return "source"


def read_status(
    settings: Settings, group: str, topics: dict[str, str] | None = None
) -> GroupStatus:
    """Read the status of ``group`` (an app id) once.

    ``topics`` are the topics the app consumes, with their kinds (:func:`consumed_topics`);
    without them they are found from the group's committed offsets and its members'
    assignments. Either way every topic with a committed offset is shown.

    Raises:
        GroupNotFoundError: the group has no members and no committed offsets.
        BrokerUnreachableError: no broker answered.
    """
    # Topic metadata first: when no broker answers, it says so the way every command does.
    counts = TopicAdmin(settings).partition_counts()
    groups = GroupAdmin(settings)
    description = groups.describe(group)
    committed = groups.committed(group)
    if not description.members and not committed and description.state in ("Dead", "Unknown"):
        raise GroupNotFoundError(
            f"consumer group {group!r} does not exist: no member has joined it and it has no "
            "committed offsets (is the app id right, and has a worker of it run?)",
            code="GROUP_ID_NOT_FOUND",
        )
    kinds = _all_topics(group, topics or {}, description, committed)
    wanted = [(t, p) for t in sorted(kinds) for p in range(counts.get(t, 0))]
    wanted += sorted(set(committed) - set(wanted))
    ends = groups.offsets(wanted, "latest")
    partitions = [
        PartitionLag(t, p, committed.get((t, p)), ends.get((t, p)), None) for t, p in wanted
    ]
    return GroupStatus(
        group=group,
        state=description.state,
        protocol=description.protocol,
        assignor=description.assignor,
        members=[_member(m) for m in description.members],
        topics=kinds,
        partitions=[
            PartitionLag(p.topic, p.partition, p.committed, p.end, lag(p.committed, p.end))
            for p in partitions
        ],
        dlq=_dead_letters(groups, counts, f"{group}-dlq"),
        missing_topics=sorted(t for t in kinds if t not in counts),
        restores=[
            r for r in parse_reports(groups.committed_metadata(restore_group(group))) if not r.done
        ],
    )


def _all_topics(
    group: str,
    known: dict[str, str],
    description: GroupDescription,
    committed: dict[Partition, int],
) -> dict[str, str]:
    names = set(known) | {t for t, _ in committed}
    names |= {t for m in description.members for t, _ in (*m.partitions, *m.pending)}
    return {name: known.get(name) or guess_kind(group, name) for name in sorted(names)}


def _member(member: GroupMember) -> MemberStatus:
    return MemberStatus(
        member_id=member.member_id,
        client_id=member.client_id,
        host=member.host,
        instance_id=member.instance_id,
        partitions=list(member.partitions),
        pending=list(member.pending),
    )


def _dead_letters(groups: GroupAdmin, counts: dict[str, int], topic: str) -> DeadLetterSize:
    if topic not in counts:
        return DeadLetterSize(topic, None)
    partitions = [(topic, p) for p in range(counts[topic])]
    starts = groups.offsets(partitions, "earliest")
    ends = groups.offsets(partitions, "latest")
    held = 0
    for key in partitions:
        start, end = starts.get(key), ends.get(key)
        if start is not None and end is not None:
            held += end - start
    return DeadLetterSize(topic, held)
