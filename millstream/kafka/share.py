"""Share groups (KIP-932): the share consumer and the group configs queue mode sets.

confluent-kafka's ``ShareConsumer`` is a preview in librdkafka 2.16: ``poll()``
returns a batch; in explicit mode every record of it must be acknowledged (ACCEPT,
RELEASE or REJECT) before the next ``poll()``; acknowledgements travel with the
next poll or ``commit_async``; there is no lock renewal and no wakeup, and the
object is not thread-safe. A broker whose ``share.version`` feature is off answers
the consumer's first heartbeat with UNSUPPORTED_VERSION, which is fatal for it.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from confluent_kafka import AcknowledgeType, KafkaException, Message, ShareConsumer
from confluent_kafka import KafkaError as _CKError

from millstream.config import Settings
from millstream.kafka.clients import base_config
from millstream.kafka.records import ConsumedRecord

ACCEPT = AcknowledgeType.ACCEPT
RELEASE = AcknowledgeType.RELEASE
REJECT = AcknowledgeType.REJECT


class SharedRecord(ConsumedRecord, Protocol):
    """A record delivered to a share consumer: it knows how often it was delivered."""

    def delivery_count(self) -> int | None: ...

    def error(self) -> Any: ...


def poll_records(consumer: ShareConsumer, timeout: float) -> list[SharedRecord]:
    """One ``poll`` of ``consumer``, as records (errors among them answer ``error()``)."""
    return cast("list[SharedRecord]", list(consumer.poll(timeout)))


def acknowledge(consumer: ShareConsumer, record: SharedRecord, ack: AcknowledgeType) -> None:
    """Mark ``record`` ACCEPT, RELEASE or REJECT; sent with the next poll or commit.

    Raises:
        confluent_kafka.KafkaException: it is no longer in flight (its lock ran out).
    """
    consumer.acknowledge(cast("Message", record), ack)


#: The broker settings behind the group configs queue mode reads and sets.
LOCK_SETTING = "share.record.lock.duration.ms"
DELIVERY_LIMIT_SETTING = "share.delivery.count.limit"

__all__ = [
    "ACCEPT",
    "DELIVERY_LIMIT_SETTING",
    "LOCK_SETTING",
    "REJECT",
    "RELEASE",
    "AcknowledgeType",
    "ShareConsumer",
    "SharedRecord",
    "acknowledge",
    "make_share_consumer",
    "poll_records",
    "share_groups_unsupported",
]


def make_share_consumer(
    settings: Settings,
    group_id: str,
    *,
    max_records: int,
    client_id: str | None = None,
    **overrides: Any,
) -> ShareConsumer:
    """A share consumer in ``group_id``, in explicit acknowledgement mode, asking for
    about ``max_records`` records per poll (the broker hands out whole record batches,
    so a poll may return more)."""
    config = {
        **base_config(settings, client_id),
        "group.id": group_id,
        "share.acknowledgement.mode": "explicit",
        "max.poll.records": max(1, max_records),
        "fetch.wait.max.ms": 100,
        **overrides,
    }
    return ShareConsumer(config)


def share_groups_unsupported(exc: BaseException) -> bool:
    """Whether the share consumer raised ``exc`` because the brokers have no share groups
    (the ``share.version`` feature is off: its heartbeat is an unsupported API)."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return isinstance(error, _CKError) and error.code() == _CKError.UNSUPPORTED_VERSION
