"""Topic declarations: a name, an optional partition count, and the serdes of its records."""

from __future__ import annotations

from dataclasses import dataclass, field

from millstream.errors import ConfigurationError
from millstream.kafka import TopicSpec
from millstream.serde import Serde, SerdeSpec, resolve_serde


@dataclass(frozen=True)
class Topic:
    """A Kafka topic as an application sees it.

    ``partitions=None`` refers to an existing topic: the worker fails at startup
    if it is missing. With ``partitions`` set, the topic is created when missing.
    """

    name: str
    partitions: int | None = None
    key_serde: Serde = field(default_factory=lambda: resolve_serde("str"))
    value_serde: Serde = field(default_factory=lambda: resolve_serde("json"))
    replication: int | None = None
    config: dict[str, str] = field(default_factory=dict)

    def spec(self) -> TopicSpec | None:
        """The creation spec, or None for a topic that must already exist."""
        if self.partitions is None:
            return None
        return TopicSpec(self.name, self.partitions, self.replication, dict(self.config))


def declare_topic(
    name: str,
    *,
    partitions: int | None = None,
    key_serde: SerdeSpec = "str",
    value_serde: SerdeSpec = "json",
    replication: int | None = None,
    config: dict[str, str] | None = None,
) -> Topic:
    """Validate and build a :class:`Topic`.

    Raises:
        ConfigurationError: an illegal name, a partition count below 1, or an unknown serde.
    """
    legal = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    if not name or len(name) > 249 or not set(name) <= legal or name in {".", ".."}:
        raise ConfigurationError("topic", f"{name!r} is not a legal Kafka topic name")
    if partitions is not None and partitions < 1:
        raise ConfigurationError("partitions", f"topic {name!r} needs at least 1 partition")
    return Topic(
        name=name,
        partitions=partitions,
        key_serde=resolve_serde(key_serde, setting="key_serde"),
        value_serde=resolve_serde(value_serde, setting="value_serde"),
        replication=replication,
        config=dict(config or {}),
    )
