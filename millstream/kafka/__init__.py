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
from millstream.kafka.group_config import GroupConfig
from millstream.kafka.records import ConsumedRecord
from millstream.kafka.share import (
    ACCEPT,
    REJECT,
    RELEASE,
    AcknowledgeType,
    ShareConsumer,
    SharedRecord,
    acknowledge,
    make_share_consumer,
    poll_records,
    share_groups_unsupported,
)

__all__ = [
    "ACCEPT",
    "ANY_PARTITION",
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "REJECT",
    "RELEASE",
    "AcknowledgeType",
    "ConsumedRecord",
    "Consumer",
    "GroupConfig",
    "Message",
    "Producer",
    "ShareConsumer",
    "SharedRecord",
    "TopicAdmin",
    "TopicInfo",
    "TopicPartition",
    "TopicSpec",
    "acknowledge",
    "check_connection",
    "flush_within",
    "from_client_error",
    "from_exception",
    "make_admin",
    "make_consumer",
    "make_producer",
    "make_share_consumer",
    "poll_records",
    "produce_when_room",
    "requires_abort",
    "share_groups_unsupported",
]
