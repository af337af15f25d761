"""The share group of an app's queue-mode tasks, checked and configured at startup.

The group is ``{app_id}-tasks``. Before a worker takes any task it sets, on the group:

- ``share.auto.offset.reset=earliest``: a new group starts at the beginning of the
  task topics, so tasks sent before the first worker started are run;
- ``share.isolation.level=read_committed``: retries a worker with exactly-once
  forwards in a transaction are seen only once it commits;
- ``share.delivery.count.limit``: ``retries + 2`` of the queue task with the most
  retries, within the broker's range (2 to 10 unless the broker says otherwise).

Then it reads the group's record lock (``share.record.lock.duration.ms``, the broker's
``group.share.record.lock.duration.ms`` unless set on the group) and checks every
queue task's ``timeout`` against it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from millstream.config import Settings
from millstream.errors import ConfigurationError
from millstream.kafka import GroupConfig
from millstream.kafka.share import DELIVERY_LIMIT_SETTING, LOCK_SETTING
from millstream.processors.tasks.definition import AnyTask

log = logging.getLogger("millstream.tasks")

#: Time an attempt leaves before its record's lock runs out, for its outputs to be
#: delivered and its acknowledgement to reach the broker.
ACK_MARGIN = 2.0
#: The delivery count limits Kafka 4.x accepts by default.
MIN_DELIVERY_LIMIT, MAX_DELIVERY_LIMIT = 2, 10


def share_group(app_id: str) -> str:
    """The share group that consumes the queue-mode task topics of ``app_id``."""
    return f"{app_id}-tasks"


@dataclass(frozen=True)
class ShareGroupLimits:
    """What the broker enforces on the group's records."""

    #: Seconds a delivered record stays locked to its consumer.
    lock: float
    #: Deliveries of one record after which the broker archives it.
    delivery_limit: int


def wanted_delivery_limit(tasks: Sequence[AnyTask]) -> int:
    """``retries + 2`` of the task with the most retries, within 2-10: ``retries + 1``
    deliveries that run the task, and one more on which it is dead-lettered."""
    most = max(task.policy.retries for task in tasks)
    return min(MAX_DELIVERY_LIMIT, max(MIN_DELIVERY_LIMIT, most + 2))


def prepare_share_group(
    settings: Settings, group: str, tasks: Sequence[AnyTask]
) -> ShareGroupLimits:
    """Configure the share group for ``tasks`` and check their timeouts against its lock.

    Raises:
        ConfigurationError: a task's timeout does not fit in the record lock, or the
            group's start position cannot be set.
        KafkaError: the cluster did not answer, or refused to describe the group.
    """
    config = GroupConfig(settings, group)
    limit = wanted_delivery_limit(tasks)
    refused = config.set(
        {
            "share.auto.offset.reset": "earliest",
            "share.isolation.level": "read_committed",
            DELIVERY_LIMIT_SETTING: str(limit),
        }
    )
    if "share.auto.offset.reset" in refused:
        raise ConfigurationError(
            "share.auto.offset.reset",
            f"cannot be set to earliest on share group {group!r}, so tasks sent before "
            f"its first worker started would be skipped: {refused['share.auto.offset.reset']}",
        )
    for name, error in refused.items():
        log.warning("share group %s: %s not set (%s); the broker's value holds", group, name, error)
    values = config.read()
    limits = ShareGroupLimits(
        int(values.get(LOCK_SETTING, "30000")) / 1000.0,
        int(values.get(DELIVERY_LIMIT_SETTING, "5")),
    )
    check_timeouts(tasks, limits.lock, group)
    log.info(
        "share group %s: records locked for %gs, archived after %d deliveries",
        group,
        limits.lock,
        limits.delivery_limit,
    )
    return limits


def check_timeouts(tasks: Sequence[AnyTask], lock: float, group: str) -> None:
    """Every task's timeout must end ``ACK_MARGIN`` before the record lock does.

    Raises:
        ConfigurationError: one does not; the message names both settings.
    """
    for task in tasks:
        if task.timeout is not None and task.timeout + ACK_MARGIN > lock:
            raise ConfigurationError(
                "timeout",
                f"queue task {task.name!r} may run {task.timeout:g}s, but share group "
                f"{group!r} locks a record for {lock:g}s ({LOCK_SETTING}; the broker's "
                "group.share.record.lock.duration.ms unless set on the group). There is no "
                "lock renewal: a timeout must end "
                f"{ACK_MARGIN:g}s before the lock, or the task is delivered again while it "
                f"runs. Lower the timeout to at most {lock - ACK_MARGIN:g}s, or raise the lock "
                f"(kafka-configs.sh --alter --entity-type groups --entity-name {group} "
                f"--add-config {LOCK_SETTING}=<ms>, up to the broker's "
                "group.share.max.record.lock.duration.ms)",
            )
