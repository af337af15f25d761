"""Publishing records to Kafka: a synchronous and an asyncio publisher.

``Publisher.publish`` returns a :class:`Delivery` handle that resolves to a
:class:`RecordMetadata`; ``Publisher.publish_many`` is the bulk path and returns
:class:`PublishCounts`. ``AsyncPublisher.publish`` is awaited for the metadata.
Delivery is idempotent with acks=all: per partition, in publish order, no duplicates.
"""

from millstream.producers.async_publisher import AsyncPublisher
from millstream.producers.delivery import (
    Delivery,
    Headers,
    ProducerRecord,
    PublishCounts,
    RecordMetadata,
)
from millstream.producers.publisher import Publisher

__all__ = [
    "AsyncPublisher",
    "Delivery",
    "Headers",
    "ProducerRecord",
    "PublishCounts",
    "Publisher",
    "RecordMetadata",
]
