"""Reading a consumer group from outside it: its members and its committed offsets.

For observers (the dashboard) that watch a group without joining it. Both reads are
one admin request each and block up to ``settings.client_timeout``.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka.admin import AdminClient

from millstream.config import Settings
from millstream.errors import BrokerUnreachableError
from millstream.kafka.clients import make_admin
from millstream.kafka.errors import from_exception


@dataclass(frozen=True)
class GroupMember:
    """One member of a consumer group and the partitions it owns now."""

    member_id: str
    client_id: str
    host: str
    partitions: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class GroupDescription:
    """A consumer group as its coordinator describes it.

    ``state`` is the coordinator's word for it (``STABLE``, ``EMPTY``, ``DEAD``,
    ``RECONCILING``, ...), ``protocol`` the group's type (``CONSUMER`` for KIP-848,
    ``CLASSIC``).
    """

    group_id: str
    state: str
    protocol: str
    members: tuple[GroupMember, ...]


class GroupReader:
    """Describes one cluster's consumer groups without joining them."""

    def __init__(self, settings: Settings, client: AdminClient | None = None) -> None:
        self._timeout = settings.client_timeout
        self._client = client or make_admin(settings)

    def describe(self, group_id: str) -> GroupDescription:
        """The group's state and members, each with its assigned partitions (sorted).

        A group nobody has joined yet is described as ``DEAD`` with no members.

        Raises:
            KafkaError: the cluster did not answer in time, or refused.
        """
        futures = self._client.describe_consumer_groups([group_id], request_timeout=self._timeout)
        group = self._result(futures[group_id], f"describing group {group_id!r}")
        members = tuple(
            GroupMember(
                member_id=m.member_id,
                client_id=m.client_id,
                host=m.host,
                partitions=tuple(
                    sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)
                ),
            )
            for m in group.members
        )
        return GroupDescription(
            group_id=group_id,
            state=_name(group.state),
            protocol=_name(getattr(group, "type", "UNKNOWN")),
            members=tuple(sorted(members, key=lambda m: (m.client_id, m.member_id))),
        )

    def committed(self, group_id: str) -> dict[tuple[str, int], int]:
        """The offset the group committed on each partition it has committed on.

        Raises:
            KafkaError: the cluster did not answer in time, or refused.
        """
        request = [ConsumerGroupTopicPartitions(group_id)]
        futures = self._client.list_consumer_group_offsets(request, request_timeout=self._timeout)
        answer = self._result(futures[group_id], f"reading the offsets of group {group_id!r}")
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in answer.topic_partitions
            if tp.error is None and tp.offset >= 0
        }

    def _result(self, future: concurrent.futures.Future[Any], what: str) -> Any:
        try:
            return future.result(timeout=self._timeout)
        except KafkaException as exc:
            raise from_exception(exc, what) from exc
        except concurrent.futures.TimeoutError as exc:
            raise BrokerUnreachableError(
                f"{what}: no answer within {self._timeout:g}s", retriable=True
            ) from exc


def _name(value: object) -> str:
    """An enum member's name (``ConsumerGroupState.STABLE`` -> ``STABLE``), else its text."""
    return str(getattr(value, "name", value))
