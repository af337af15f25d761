"""Consumer-group administration: describe a group, read and change its committed
offsets, and look up partition offsets the way Kafka's own group tool does.

End offsets are asked for with READ_UNCOMMITTED isolation, so they are the high
watermark: the offset after the last record *or transaction marker* written, open
transactions included. That is the LOG-END-OFFSET of ``kafka-consumer-groups
--describe`` (its ListOffsets request uses the default isolation level), and so
lags computed from it equal the tool's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    IsolationLevel,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from millstream.config import Settings
from millstream.errors import BrokerUnreachableError, KafkaError
from millstream.kafka.clients import make_admin
from millstream.kafka.errors import admin_answer

Partition = tuple[str, int]
#: Where offsets are looked up: the log start, the log end, or the first record at or
#: after a time (epoch milliseconds).
OffsetTarget = Literal["earliest", "latest"] | int

#: Kafka's names for the group states (as ``kafka-consumer-groups`` prints them).
_STATES = {
    ConsumerGroupState.PREPARING_REBALANCING: "PreparingRebalance",
    ConsumerGroupState.COMPLETING_REBALANCING: "CompletingRebalance",
    ConsumerGroupState.STABLE: "Stable",
    ConsumerGroupState.DEAD: "Dead",
    ConsumerGroupState.EMPTY: "Empty",
    ConsumerGroupState.UNKNOWN: "Unknown",
}
_PROTOCOLS = {
    ConsumerGroupType.CONSUMER: "consumer",
    ConsumerGroupType.CLASSIC: "classic",
    ConsumerGroupType.UNKNOWN: "unknown",
}


@dataclass(frozen=True)
class GroupMember:
    """One live member of a group: the partitions it holds now and, under KIP-848, those
    the coordinator assigned to it that it has not taken yet (``pending``: a worker takes
    a partition once its state stores are restored, so these are restoring or still
    being handed over). ``pending`` is empty under the classic protocol."""

    member_id: str
    client_id: str
    host: str
    instance_id: str | None
    partitions: tuple[Partition, ...]
    pending: tuple[Partition, ...] = ()


@dataclass(frozen=True)
class GroupDescription:
    """What the group coordinator says about a group.

    ``state`` uses Kafka's names (Stable, Empty, Dead, ...); ``protocol`` is
    ``consumer`` (KIP-848), ``classic`` or ``unknown``. A group the coordinator does
    not know is described as Dead with no members.
    """

    group_id: str
    state: str
    protocol: str
    assignor: str
    coordinator: int | None
    members: tuple[GroupMember, ...]


class GroupAdmin:
    """Group inspection and offset changes against one cluster.

    Every call blocks up to ``settings.client_timeout`` and raises the millstream error
    of what went wrong (BrokerUnreachableError, AuthorizationError, KafkaError).
    """

    def __init__(self, settings: Settings, client: AdminClient | None = None) -> None:
        self._timeout = settings.client_timeout
        self._client = client or make_admin(settings)

    def describe(self, group: str) -> GroupDescription:
        """The group's state, protocol and members (with their current assignments)."""
        future = self._client.describe_consumer_groups([group], request_timeout=self._timeout)
        found = admin_answer(future[group], f"describing group {group!r}", self._timeout)
        members = tuple(
            GroupMember(
                member_id=m.member_id,
                client_id=m.client_id,
                host=m.host,
                instance_id=m.group_instance_id,
                partitions=_partitions(m.assignment.topic_partitions if m.assignment else []),
                pending=_pending(m.assignment, m.target_assignment),
            )
            for m in found.members
        )
        coordinator = found.coordinator.id if found.coordinator is not None else None
        return GroupDescription(
            group_id=group,
            state=_STATES.get(found.state, str(found.state)),
            protocol=_PROTOCOLS.get(found.type, "unknown"),
            assignor=found.partition_assignor or "",
            coordinator=coordinator,
            members=members,
        )

    def committed(self, group: str) -> dict[Partition, int]:
        """The offset the group committed on each partition that has one (the next
        offset to read). Partitions without a commit are absent."""
        return {key: offset for key, (offset, _) in self.committed_metadata(group).items()}

    def committed_metadata(self, group: str) -> dict[Partition, tuple[int, str | None]]:
        """:meth:`committed`, with the metadata string committed with each offset."""
        request = [ConsumerGroupTopicPartitions(group)]
        futures = self._client.list_consumer_group_offsets(request, request_timeout=self._timeout)
        answer = admin_answer(
            futures[group], f"reading the offsets of group {group!r}", self._timeout
        )
        return {
            (tp.topic, tp.partition): (tp.offset, tp.metadata or None)
            for tp in answer.topic_partitions or []
            if tp.error is None and tp.offset >= 0
        }

    def offsets(
        self, partitions: Iterable[Partition], target: OffsetTarget
    ) -> dict[Partition, int | None]:
        """The offset of ``target`` in each partition, in one request.

        ``latest`` is the high watermark (see the module docstring); a timestamp gives
        the first offset whose record time is at or after it, or the high watermark when
        the partition has no such record (as ``kafka-consumer-groups --to-datetime``
        does). A partition whose leader did not answer gets None.

        Raises:
            BrokerUnreachableError: no broker answered.
        """
        spec = _spec(target)
        request = {TopicPartition(t, p): spec for t, p in partitions}
        if not request:
            return {}
        futures = self._client.list_offsets(
            request,
            isolation_level=IsolationLevel.READ_UNCOMMITTED,
            request_timeout=self._timeout,
        )
        found: dict[Partition, int | None] = {}
        for tp, future in futures.items():
            try:
                found[(tp.topic, tp.partition)] = admin_answer(
                    future, "listing offsets", self._timeout
                ).offset
            except BrokerUnreachableError:
                raise
            except KafkaError:
                found[(tp.topic, tp.partition)] = None
        missed = [key for key, offset in found.items() if offset is not None and offset < 0]
        if missed and target not in ("earliest", "latest"):
            found.update(self.offsets(missed, "latest"))
        return found

    def alter(self, group: str, offsets: dict[Partition, int]) -> None:
        """Set the group's committed offsets (without commit metadata).

        Raises:
            KafkaError: the coordinator refused, e.g. because the group has live members.
        """
        if not offsets:
            return
        partitions = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
        request = [ConsumerGroupTopicPartitions(group, partitions)]
        futures = self._client.alter_consumer_group_offsets(request, request_timeout=self._timeout)
        answer = admin_answer(
            futures[group], f"changing the offsets of group {group!r}", self._timeout
        )
        for tp in answer.topic_partitions or []:
            if tp.error is not None:
                raise KafkaError(
                    f"changing the offset of {tp.topic}[{tp.partition}] in group {group!r}: "
                    f"{tp.error.str()}",
                    code=tp.error.name(),
                )


def _partitions(assigned: Iterable[TopicPartition]) -> tuple[Partition, ...]:
    return tuple(sorted((tp.topic, tp.partition) for tp in assigned))


def _pending(current: Any, target: Any) -> tuple[Partition, ...]:
    if target is None:
        return ()
    held = set(_partitions(current.topic_partitions if current else []))
    return tuple(p for p in _partitions(target.topic_partitions) if p not in held)


def _spec(target: OffsetTarget) -> Any:
    if target == "earliest":
        return OffsetSpec.earliest()  # type: ignore[no-untyped-call]
    if target == "latest":
        return OffsetSpec.latest()  # type: ignore[no-untyped-call]
    return OffsetSpec.for_timestamp(int(target))
