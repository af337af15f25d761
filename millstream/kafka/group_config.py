"""Per-group configuration (Kafka 4.x, KIP-848 consumer groups): read and set it.

A consumer group's session timeout and heartbeat interval are the broker's
(``group.consumer.session.timeout.ms``, ...) unless the group has its own
(``consumer.session.timeout.ms``, ``consumer.heartbeat.interval.ms``), set through
the admin client's incremental alter configs on the group. A shorter session timeout
lets the coordinator give a dead member's partitions to the others sooner; the broker
refuses values below its ``group.consumer.min.session.timeout.ms`` and
``group.consumer.min.heartbeat.interval.ms``.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from millstream.config import Settings
from millstream.errors import ConfigurationError
from millstream.kafka.clients import make_admin
from millstream.kafka.errors import from_exception


def set_group_config(settings: Settings, group: str, configs: dict[str, str]) -> None:
    """Set ``configs`` on consumer group ``group`` (which need not exist yet).

    Raises:
        ConfigurationError: the broker refused a value (below its minimum, unknown name);
            the message names the settings.
        KafkaError: anything else the client reported.
    """
    entries = [
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()
    ]
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    admin = make_admin(settings)  # held until the answer: a dropped client cancels it
    future = admin.incremental_alter_configs([resource])[resource]
    try:
        future.result(settings.client_timeout)
    except KafkaException as exc:
        if exc.args and getattr(exc.args[0], "name", lambda: "")() == "INVALID_CONFIG":
            raise ConfigurationError(", ".join(configs), str(exc.args[0].str())) from exc
        raise from_exception(exc, f"setting the config of group {group}") from exc


def broker_config(settings: Settings, names: list[str]) -> dict[str, str]:
    """The values of broker settings ``names`` on one broker of the cluster.

    Raises:
        KafkaError: the client reported an error.
    """
    admin = make_admin(settings)
    broker = min(admin.list_topics(timeout=settings.client_timeout).brokers)
    resource = ConfigResource(ResourceType.BROKER, str(broker))
    try:
        found: dict[str, Any] = admin.describe_configs([resource])[resource].result(
            settings.client_timeout
        )
    except KafkaException as exc:
        raise from_exception(exc, f"describing broker {broker}") from exc
    return {name: str(found[name].value) for name in names if name in found}
