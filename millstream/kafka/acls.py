"""ACLs that confine an application's user to its own names (used by the secured local cluster)."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from millstream.config import Settings
from millstream.kafka.clients import make_admin
from millstream.kafka.errors import from_exception


def app_acls(user: str, app_id: str) -> list[AclBinding]:
    """What user ``user`` needs to run the app ``app_id``, and no more.

    Every topic, consumer group and transactional id whose name starts with
    ``app_id`` (the app's input topics as well as those it makes: changelogs,
    repartition, dead-letter and task topics, its group and the restore group, its
    transactional ids); on the cluster, reading the broker configs, which is how a
    worker learns the group protocols the brokers offer.
    """
    principal = f"User:{user}"
    allow, everything = AclPermissionType.ALLOW, AclOperation.ALL
    prefixed = ResourcePatternType.PREFIXED
    bindings = [
        AclBinding(kind, app_id, prefixed, principal, "*", everything, allow)
        for kind in (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID)
    ]
    bindings.append(
        AclBinding(
            ResourceType.BROKER,
            "kafka-cluster",
            ResourcePatternType.LITERAL,
            principal,
            "*",
            AclOperation.DESCRIBE_CONFIGS,
            allow,
        )
    )
    return bindings


def grant(settings: Settings, bindings: list[AclBinding]) -> None:
    """Create ``bindings`` (an ACL that exists already is left as it is).

    Raises:
        AuthorizationError: ``settings``' user may not alter ACLs.
        KafkaError: the cluster refused them for another reason, or did not answer.
    """
    admin = make_admin(settings)
    futures = admin.create_acls(bindings, request_timeout=settings.client_timeout)
    for binding, future in futures.items():
        try:
            future.result(timeout=settings.client_timeout + 5)
        except KafkaException as exc:
            raise from_exception(exc, f"creating the ACL {binding}") from exc
