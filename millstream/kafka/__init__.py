"""The Kafka client layer: the only place that imports confluent_kafka.

Everything above it (producers, sinks, processors, the CLI) asks this package
for clients and topic administration, and receives millstream errors.
"""

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    Message,
    Producer,
    TopicPartition,
)

from millstream.kafka.admin import TopicAdmin, TopicInfo, TopicSpec, check_connection
from millstream.kafka.clients import (
    ANY_PARTITION,
    flush_within,
    make_admin,
    make_consumer,
    make_producer,
    produce_when_room,
)
from millstream.kafka.errors import from_client_error, from_exception, requires_abort
from millstream.kafka.records import ConsumedRecord

__all__ = [
    "ANY_PARTITION",
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "ConsumedRecord",
    "Consumer",
    "Message",
    "Producer",
    "TopicAdmin",
    "TopicInfo",
    "TopicPartition",
    "TopicSpec",
    "check_connection",
    "flush_within",
    "from_client_error",
    "from_exception",
    "make_admin",
    "make_consumer",
    "make_producer",
    "produce_when_room",
    "requires_abort",
]
