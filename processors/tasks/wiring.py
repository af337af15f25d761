"""How tasks enter a topology: a task topic read by a :class:`TaskStep` (with its
completion store), the delay tiers read by :class:`DelayStep`\\ s, and the reply
topic, which the worker creates with the rest."""

from __future__ import annotations

from millstream.errors import ConfigurationError
from millstream.processors.tasks.client import (
    DELAY_PARTITIONS,
    REPLY_PARTITIONS,
    REPLY_RETENTION_MS,
    reply_topic,
)
from millstream.processors.tasks.definition import AnyTask
from millstream.processors.tasks.delays import DelayPartition, tier_topics
from millstream.processors.tasks.partition import TaskPartition
from millstream.processors.tasks.steps import DelayStep, TaskStep
from millstream.processors.topology import Topology
from millstream.serde import resolve_serde
from millstream.topics import Topic


def _raw_topic(name: str, partitions: int, config: dict[str, str] | None = None) -> Topic:
    raw = resolve_serde("bytes")
    return Topic(name, partitions, key_serde=raw, value_serde=raw, config=config or {})


def register_task(topology: Topology, task: AnyTask) -> None:
    """Add ``task`` to ``topology``.

    Raises:
        ConfigurationError: a task of that name exists, or its topic is read by a stream.
    """
    if task.name in topology.tasks:
        raise ConfigurationError("name", f"there is a task named {task.name!r} already")
    if not topology.tasks:
        _add_task_topics(topology)
    step = task_step(topology, task.topic, task.partitions)
    step.tasks[task.name] = task
    topology.tasks[task.name] = task


def task_step(topology: Topology, topic_name: str, partitions: int) -> TaskStep:
    """The step reading ``topic_name``, added with its store when new."""
    roots = topology.sources.get(topic_name, [])
    for root in roots:
        for child in root.children:
            if isinstance(child, TaskStep):
                return child
    if roots:
        raise ConfigurationError(
            "topic", f"{topic_name!r} is read by a stream; tasks need their own"
        )
    topic = topology.declare(_raw_topic(topic_name, partitions))
    short = topic_name.removeprefix(f"{topology.app_id}-")
    step = TaskStep(topic, topology.unique_name(f"{short}-done"))
    topology.stream(topic)._then(step)  # noqa: SLF001 - built as the DSL builds pipelines
    topology.add_store(step)
    topology.partition_types[topic_name] = TaskPartition
    return step


def _add_task_topics(topology: Topology) -> None:
    for name, wait in tier_topics(topology.app_id).items():
        topic = _raw_topic(name, DELAY_PARTITIONS)
        topology.stream(topic)._then(DelayStep(topic, wait))  # noqa: SLF001 - as above
        topology.partition_types[name] = DelayPartition
    retention = {"retention.ms": str(REPLY_RETENTION_MS)}
    topology.declare(_raw_topic(reply_topic(topology.app_id), REPLY_PARTITIONS, retention))


def task_steps(topology: Topology) -> list[TaskStep | DelayStep]:
    """The task and delay steps of ``topology``, for the worker's task runtime."""
    found: list[TaskStep | DelayStep] = []
    for roots in topology.sources.values():
        for root in roots:
            found += [c for c in root.children if isinstance(c, TaskStep | DelayStep)]
    return found
