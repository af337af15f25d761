"""Per-group configuration (Kafka 4.x): read and set it, and read the broker's.

A group's settings are the broker's (``group.consumer.session.timeout.ms``,
``group.share.record.lock.duration.ms``, ...) unless the group has its own
(``consumer.session.timeout.ms``, ``share.record.lock.duration.ms``, ...), set through
the admin client's incremental alter configs on the group. The broker refuses values
outside its bounds (``group.consumer.min.session.timeout.ms``, ...).
"""

from __future__ import annotations

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from millstream.config import Settings
from millstream.errors import KafkaError
from millstream.kafka.clients import make_admin
from millstream.kafka.errors import admin_answer

__all__ = ["GroupConfig", "broker_config"]


class GroupConfig:
    """Reads and sets the configs of one group, a consumer or a share group (a GROUP
    config resource; the group need not exist yet). Each call blocks up to
    ``settings.client_timeout``."""

    def __init__(self, settings: Settings, group_id: str) -> None:
        self.group_id = group_id
        self._timeout = settings.client_timeout
        self._client = make_admin(settings)

    def read(self) -> dict[str, str]:
        """The group's configs, broker defaults included.

        Raises:
            KafkaError: the cluster did not answer, or refused.
        """
        resource = ConfigResource(ResourceType.GROUP, self.group_id)
        future = self._client.describe_configs([resource], request_timeout=self._timeout)
        entries = admin_answer(
            future[resource], f"reading the configs of group {self.group_id!r}", self._timeout
        )
        return {name: str(entry.value) for name, entry in entries.items()}

    def set(self, values: dict[str, str]) -> dict[str, KafkaError]:
        """Set each config on its own (one refused does not stop the others); returns
        the refusals by config name (the broker's message says why)."""
        refused: dict[str, KafkaError] = {}
        for name, value in values.items():
            entry = ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
            resource = ConfigResource(
                ResourceType.GROUP, self.group_id, incremental_configs=[entry]
            )
            future = self._client.incremental_alter_configs(
                [resource], request_timeout=self._timeout
            )[resource]
            try:
                admin_answer(
                    future, f"setting {name}={value} on group {self.group_id!r}", self._timeout
                )
            except KafkaError as exc:
                refused[name] = exc
        return refused


def broker_config(settings: Settings, names: list[str]) -> dict[str, str]:
    """The values of broker settings ``names`` on one broker of the cluster.

    Raises:
        KafkaError: the client reported an error.
    """
    admin = make_admin(settings)
    broker = min(admin.list_topics(timeout=settings.client_timeout).brokers)
    resource = ConfigResource(ResourceType.BROKER, str(broker))
    future = admin.describe_configs([resource])[resource]
    found = admin_answer(future, f"describing broker {broker}", settings.client_timeout)
    return {name: str(found[name].value) for name in names if name in found}
