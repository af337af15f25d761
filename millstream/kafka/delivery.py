"""What the publishing side needs from the client layer: delivery errors and their types.

Delivery reports arrive as ``(error, message)`` pairs from the client's poll or
flush; :func:`delivery_error` turns the client's error into a
:class:`~millstream.errors.DeliveryError` so the layers above never see a
confluent-kafka error type.
"""

from __future__ import annotations

from confluent_kafka import KafkaError as ClientError
from confluent_kafka import KafkaException as ClientException

from millstream.errors import DeliveryError
from millstream.kafka.errors import from_client_error, from_exception

#: The compression codecs a producer accepts (``compression.type``).
COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")


def delivery_error(error: ClientError | None, topic: str | None) -> DeliveryError:
    """A DeliveryError for a failed delivery report, keeping the client's code and retriability."""
    mapped = from_client_error(error, f"delivering a record to topic {topic!r}")
    return DeliveryError(str(mapped), code=mapped.code, retriable=mapped.retriable)


def produce_error(exc: BaseException, topic: str) -> DeliveryError:
    """A DeliveryError for an exception raised by ``produce`` itself (too large, bad partition)."""
    mapped = from_exception(exc, f"publishing a record to topic {topic!r}")
    return DeliveryError(str(mapped), code=mapped.code, retriable=mapped.retriable)


__all__ = [
    "COMPRESSION_TYPES",
    "ClientError",
    "ClientException",
    "delivery_error",
    "produce_error",
]
