"""The producer both publishers share: configured client, default serdes, one produce call.

Package-internal: :class:`~millstream.producers.Publisher` and
:class:`~millstream.producers.AsyncPublisher` differ only in how they wait
(polling in the caller's thread vs. a background poll thread and asyncio).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from millstream.config import Settings, load_settings
from millstream.errors import ConfigurationError, DeliveryError
from millstream.kafka import Message, Producer, flush_within, make_producer
from millstream.kafka.delivery import COMPRESSION_TYPES, ClientError, ClientException, produce_error
from millstream.producers.delivery import Headers
from millstream.serde import Serde, SerdeSpec, resolve_serde
from millstream.topics import Topic

DeliveryCallback = Callable[[ClientError | None, Message], None]

#: A destination: a topic name (publisher's serdes) or a declared Topic (its own serdes).
Destination = str | Topic


def resolve_settings(settings: Settings | None, bootstrap_servers: str | None) -> Settings:
    """``settings`` (or the environment's) with ``bootstrap_servers`` applied when given."""
    if settings is None:
        return load_settings(bootstrap_servers=bootstrap_servers)
    if bootstrap_servers is None:
        return settings
    return load_settings(**{**settings.model_dump(), "bootstrap_servers": bootstrap_servers})


def producer_overrides(
    linger_ms: float, compression: str, producer_config: Mapping[str, Any] | None
) -> dict[str, Any]:
    """librdkafka properties for the publisher's options; ``producer_config`` wins."""
    if compression not in COMPRESSION_TYPES:
        known = ", ".join(COMPRESSION_TYPES)
        raise ConfigurationError("compression", f"{compression!r} is not one of {known}")
    if linger_ms < 0:
        raise ConfigurationError("linger_ms", f"must be >= 0, got {linger_ms}")
    return {"linger.ms": linger_ms, "compression.type": compression, **(producer_config or {})}


class ProducerCore:
    """An idempotent producer (acks=all) with the serdes records are encoded with."""

    def __init__(
        self,
        *,
        settings: Settings | None,
        bootstrap_servers: str | None,
        key_serde: SerdeSpec,
        value_serde: SerdeSpec,
        linger_ms: float,
        compression: str,
        producer_config: Mapping[str, Any] | None,
        client_id: str | None,
    ) -> None:
        self.settings = resolve_settings(settings, bootstrap_servers)
        self.key_serde: Serde = resolve_serde(key_serde, setting="key_serde")
        self.value_serde: Serde = resolve_serde(value_serde, setting="value_serde")
        overrides = producer_overrides(linger_ms, compression, producer_config)
        try:
            self.producer: Producer = make_producer(
                self.settings, client_id=client_id or "millstream-publisher", **overrides
            )
        except ClientException as exc:
            raise ConfigurationError("producer_config", str(exc)) from exc

    def target(self, topic: Destination) -> tuple[str, Serde, Serde]:
        """The topic name and the key and value serdes to encode its records with."""
        if isinstance(topic, str):
            return topic, self.key_serde, self.value_serde
        return topic.name, topic.key_serde, topic.value_serde

    def try_produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int | None,
        timestamp: int | None,
        headers: Headers | None,
        callback: DeliveryCallback | None,
    ) -> bool:
        """Enqueue one encoded record; False when the local queue is full.

        Raises:
            DeliveryError: the client refused the record (too large, unknown partition, ...).
        """
        try:
            self.producer.produce(
                topic,
                value,
                key,
                -1 if partition is None else partition,
                callback,
                None,
                timestamp or 0,
                headers,
            )
        except BufferError:
            return False
        except ClientException as exc:
            raise produce_error(exc, topic) from exc
        return True

    def flush(self, timeout: float | None) -> None:
        """Wait for every queued record's outcome.

        Raises:
            DeliveryError: records were still queued when ``timeout`` expired.
        """
        remaining = flush_within(self.producer, timeout)
        if remaining:
            raise DeliveryError(
                f"{remaining} record(s) still undelivered after {timeout:g}s",
                code="_TIMED_OUT",
                retriable=True,
            )


def queue_full_error(topic: str, waited: float) -> DeliveryError:
    """The error for a local queue that stayed full past the publisher's patience."""
    return DeliveryError(
        f"publishing to topic {topic!r}: the local producer queue stayed full for "
        f"{waited:g}s (is the cluster reachable? raise queue_full_timeout or the "
        "producer's queue.buffering.max.messages)",
        code="_QUEUE_FULL",
        retriable=True,
    )
