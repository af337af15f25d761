"""Factories for the confluent-kafka clients, configured the millstream way.

This package is the only place that imports confluent_kafka. The clients it
returns are the confluent-kafka objects themselves (a consumer is a
:class:`~millstream.kafka.group.GroupConsumer`, a subclass that changes only how
partitions are assigned): the hot path calls their methods directly, with no
per-record wrapper.

Every client gets the connection settings (TLS, SASL) of :class:`Settings` and an
error callback that turns a refusal by the cluster (wrong SASL credentials, an
untrusted certificate) into an exception out of the client's next ``poll()``,
``consume()`` or ``flush()``: librdkafka itself would retry the connection for ever.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka import KafkaError as ClientError
from confluent_kafka.admin import AdminClient

from millstream.config import Settings
from millstream.kafka.errors import refusal
from millstream.kafka.group import GroupConsumer

log = logging.getLogger("millstream.kafka")

#: Producer defaults: idempotent, all replicas, batched and compressed.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "batch.num.messages": 10000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500000,
    "queue.buffering.max.kbytes": 262144,
}

#: The partition argument that lets the producer's partitioner choose.
#:
#: ``Producer.produce`` parses keyword arguments by name on every call, which costs
#: about a third of a microsecond per record; the hot paths pass them by position,
#: in the order topic, value, key, partition, callback, on_delivery, timestamp:
#: ``produce(topic, value, key, ANY_PARTITION, None, None, timestamp)`` is
#: ``produce(topic, value, key, timestamp=timestamp)``.
ANY_PARTITION = -1


def produce_when_room(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    partition: int = ANY_PARTITION,
    timestamp: int = 0,
    headers: Any = None,
    callback: Any = None,
    *,
    patience: float | None = None,
) -> None:
    """``producer.produce(...)`` that waits while the client's local queue is full.

    This is the one place millstream waits for room: the queue drains as the client
    delivers, and polling serves the delivery reports that free the space while it
    paces the retries.

    Raises:
        BufferError: the queue stayed full for ``patience`` seconds (None: no limit).
        confluent_kafka.KafkaException: the client refused the record outright.
    """
    deadline = None if patience is None else time.monotonic() + patience
    while True:
        try:
            producer.produce(topic, value, key, partition, callback, None, timestamp, headers)
            return
        except BufferError:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            producer.poll(0.05)


#: Longest single ``flush()`` call of :func:`flush_within`.
FLUSH_SLICE = 0.5


def flush_within(producer: Producer, timeout: float | None) -> int:
    """``producer.flush(timeout)`` in slices; returns the records still queued.

    An exception raised by a callback (the refusal :func:`raise_refusal` raises) comes
    out of ``flush()`` only when the call returns, and librdkafka's flush goes on for
    its whole timeout: slices bound that wait.

    Raises:
        AuthenticationError, TlsError: the cluster refused the producer.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = FLUSH_SLICE if deadline is None else min(FLUSH_SLICE, deadline - time.monotonic())
        remaining = int(producer.flush(max(left, 0.0)))
        if remaining == 0 or (deadline is not None and time.monotonic() >= deadline):
            return remaining


#: Consumer defaults: offsets are committed by millstream's checkpoint, never automatically.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "fetch.min.bytes": 1,
    "fetch.wait.max.ms": 100,
    # Prefetch: up to 100k records per partition and 64 MB in all, so a batch is
    # always waiting when the worker asks; a smaller prefetch left the worker idle
    # on fetches for a third of the time at 150k records/s.
    "queued.min.messages": 100000,
    "queued.max.messages.kbytes": 65536,
    "enable.partition.eof": False,
    # Never read records of aborted (or still open) transactions.
    "isolation.level": "read_committed",
}


def raise_refusal(error: ClientError) -> None:
    """The clients' ``error_cb``: raise the cluster's refusal of this client, log the rest.

    It runs inside the client call that serves callbacks, and confluent-kafka raises
    what it raises from that call once the call is done, so a worker or command meets
    an :class:`~millstream.errors.AuthenticationError` or
    :class:`~millstream.errors.TlsError` within one connection attempt instead of
    waiting for ever. Other errors (a broker down, a timeout) are ones librdkafka
    recovers from, and its own log lines report them already: they go to the debug log.
    """
    refused = refusal(error)
    if refused is not None:
        raise refused
    log.debug("client error: %s (%s)", error.str(), error.name())


def base_config(settings: Settings, client_id: str | None) -> dict[str, Any]:
    """The connection properties of every client, with this layer's logger."""
    config = settings.kafka_config()
    config["logger"] = log
    config["error_cb"] = raise_refusal
    if client_id:
        config["client.id"] = client_id
    return config


def make_producer(
    settings: Settings, *, client_id: str | None = None, **overrides: Any
) -> Producer:
    """An idempotent producer; ``overrides`` are librdkafka properties (dots as in Kafka)."""
    config = {**base_config(settings, client_id), **PRODUCER_DEFAULTS, **overrides}
    return Producer(config)


def make_consumer(
    settings: Settings, group_id: str, *, client_id: str | None = None, **overrides: Any
) -> Consumer:
    """A consumer in ``group_id`` with manual commits; ``overrides`` are librdkafka properties.

    Partitions it is assigned without an offset start at the group's committed offset,
    which it looks up itself (:class:`~millstream.kafka.group.GroupConsumer`).
    """
    config = {**base_config(settings, client_id), **CONSUMER_DEFAULTS, "group.id": group_id}
    config.update(overrides)
    return GroupConsumer(config)


def make_admin(settings: Settings) -> AdminClient:
    """An admin client for topic and group management."""
    return AdminClient(base_config(settings, "millstream-admin"))
