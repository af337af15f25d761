"""A sink that writes records to a Kafka topic through the worker's producer."""

from __future__ import annotations

from collections.abc import Sequence

from millstream.errors import ConfigurationError
from millstream.kafka import ANY_PARTITION, Producer, produce_when_room
from millstream.serde import Serde, SerdeSpec, resolve_serde
from millstream.sinks.base import Sink, SinkContext, SinkRecord
from millstream.topics import Topic


class KafkaSink(Sink):
    """Produces each record to ``topic`` with the record's timestamp.

    Uses the worker's idempotent producer, so the worker's checkpoint (which
    flushes that producer before committing offsets) makes the records durable.
    """

    def __init__(
        self, topic: Topic | str, *, key_serde: SerdeSpec = "str", value_serde: SerdeSpec = "json"
    ) -> None:
        if isinstance(topic, Topic):
            self.topic = topic.name
            self._key: Serde = topic.key_serde
            self._value: Serde = topic.value_serde
        else:
            self.topic = topic
            self._key = resolve_serde(key_serde, setting="key_serde")
            self._value = resolve_serde(value_serde, setting="value_serde")
        self._producer: Producer | None = None

    def open(self, context: SinkContext) -> None:
        self._producer = context.producer

    def write(self, records: Sequence[SinkRecord]) -> None:
        producer = self._producer
        if producer is None:
            raise ConfigurationError("sink", f"KafkaSink({self.topic!r}) used before open()")
        key, value, topic = self._key.serialize, self._value.serialize, self.topic
        for r in records:
            produce_when_room(
                producer, topic, value(r.value), key(r.key), ANY_PARTITION, r.timestamp
            )

    def flush(self) -> None:
        if self._producer is not None:
            self._producer.flush()
