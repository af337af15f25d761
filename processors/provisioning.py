"""Topic provisioning at worker startup: create what the app declared, check the rest.

Internal topics (repartition, changelog) copy the partition count of the topic
they follow; the dead-letter and late topics get as many partitions as the
widest declared topic.
"""

from __future__ import annotations

import logging

from millstream.config import Settings
from millstream.errors import ConfigurationError, TopicNotFoundError
from millstream.kafka import TopicAdmin, TopicSpec
from millstream.processors.topology import Topology

log = logging.getLogger("millstream.provisioning")


def provision_topics(topology: Topology, settings: Settings) -> dict[str, int]:
    """Create missing topics; returns the partition count of every topic the app uses.

    Raises:
        BrokerUnreachableError: the cluster did not answer within the client timeout.
        TopicNotFoundError: a topic referenced without ``partitions`` does not exist, or
            ``auto_create_topics`` is off and a declared topic is missing.
        AuthorizationError: the cluster's ACLs deny a topic (named in the message).
    """
    admin = TopicAdmin(settings)
    existing_counts = admin.partition_counts()
    existing = set(existing_counts)
    counts: dict[str, int] = {}
    specs: list[TopicSpec] = []
    for topic in topology.topics.values():
        if topic.name in topology.partitions_like:
            continue
        if topic.partitions is not None:
            counts[topic.name] = topic.partitions
            specs.append(TopicSpec(topic.name, topic.partitions, topic.replication, topic.config))
        elif topic.name in existing:
            counts[topic.name] = existing_counts[topic.name]
        else:
            admin.check_access(topic.name)
            raise TopicNotFoundError(
                f"topic {topic.name!r} does not exist; create it (millstream topics create) "
                f"or declare it with app.topic({topic.name!r}, partitions=N)"
            )
    for name, like in topology.partitions_like.items():
        counts[name] = _follow(name, like, topology.partitions_like, counts)
        topic = topology.topics[name]
        specs.append(TopicSpec(name, counts[name], topic.replication, topic.config))
    widest = max(counts.values(), default=1)
    for name in (topology.dlq_topic, topology.late_topic):
        counts[name] = widest
        specs.append(TopicSpec(name, widest))
    _create_missing(admin, settings, specs, existing)
    _warn_mismatches(specs, existing_counts, topology)
    return counts


def _follow(name: str, like: str, partitions_like: dict[str, str], counts: dict[str, int]) -> int:
    seen = {name}
    while like in partitions_like and like not in counts:
        if like in seen:
            raise ConfigurationError(
                "topics", f"internal topics follow each other in a cycle: {sorted(seen)}"
            )
        seen.add(like)
        like = partitions_like[like]
    return counts[like]


def _create_missing(
    admin: TopicAdmin, settings: Settings, specs: list[TopicSpec], existing: set[str]
) -> None:
    missing = [s for s in specs if s.name not in existing]
    if missing and not settings.auto_create_topics:
        names = ", ".join(s.name for s in missing)
        raise TopicNotFoundError(
            f"topics missing and MILLSTREAM_AUTO_CREATE_TOPICS is off: {names}"
        )
    created = admin.create(missing)
    if created:
        log.info("created topics: %s", ", ".join(created))


def _warn_mismatches(specs: list[TopicSpec], existing: dict[str, int], topology: Topology) -> None:
    skip = {topology.dlq_topic, topology.late_topic}
    for spec in specs:
        if spec.name in existing and spec.name not in skip:
            actual = existing[spec.name]
            if actual != spec.partitions:
                log.warning(
                    "topic %r has %d partitions, the app expects %d; using the topic as it is",
                    spec.name,
                    actual,
                    spec.partitions,
                )
