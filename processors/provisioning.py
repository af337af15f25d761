"""Topic provisioning at worker startup: create what the app declared, check the rest."""

from __future__ import annotations

import logging

from millstream.config import Settings
from millstream.errors import TopicNotFoundError
from millstream.kafka import TopicAdmin, TopicSpec
from millstream.processors.topology import Topology

log = logging.getLogger("millstream.provisioning")


def provision_topics(topology: Topology, settings: Settings) -> None:
    """Create missing topics declared with partitions (and the dead-letter topic).

    Raises:
        BrokerUnreachableError: the cluster did not answer within the client timeout.
        TopicNotFoundError: a topic referenced without ``partitions`` does not exist, or
            ``auto_create_topics`` is off and a declared topic is missing.
    """
    admin = TopicAdmin(settings)
    existing = set(admin.list())
    specs = [spec for t in topology.topics.values() if (spec := t.spec()) is not None]
    widest = max((s.partitions for s in specs), default=1)
    specs.append(TopicSpec(topology.dlq_topic, widest))
    for topic in topology.topics.values():
        if topic.partitions is None and topic.name not in existing:
            raise TopicNotFoundError(
                f"topic {topic.name!r} does not exist; create it (millstream topics create) "
                f"or declare it with app.topic({topic.name!r}, partitions=N)"
            )
    missing = [s for s in specs if s.name not in existing]
    if missing and not settings.auto_create_topics:
        names = ", ".join(s.name for s in missing)
        raise TopicNotFoundError(
            f"topics missing and MILLSTREAM_AUTO_CREATE_TOPICS is off: {names}"
        )
    created = admin.create(missing)
    if created:
        log.info("created topics: %s", ", ".join(created))
    for spec in specs:
        if spec.name in existing and spec.name != topology.dlq_topic:
            actual = admin.describe(spec.name).partitions
            if actual != spec.partitions:
                log.warning(
                    "topic %r has %d partitions, the app declares %d; using the topic as it is",
                    spec.name,
                    actual,
                    spec.partitions,
                )
