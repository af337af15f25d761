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
from millstream.processors.tasks.queue_completions import done_topic
from millstream.processors.tasks.steps import COMPLETION_TTL_MS, DelayStep, TaskStep
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
    if task.mode == "queue":
        _queue_topics(topology, task)
    else:
        step = task_step(topology, task.topic, task.partitions)
        step.tasks[task.name] = task
    topology.tasks[task.name] = task


def _queue_topics(topology: Topology, task: AnyTask) -> None:
    """Declare a queue task's topic (read by the share group, not by a stream) and its
    completion topic.

    Raises:
        ConfigurationError: the topic is read by a stream or by ordered-mode tasks.
    """
    if task.topic in topology.sources:
        raise ConfigurationError(
            "topic",
            f"{task.topic!r} is read by a stream or ordered tasks; queue tasks need their own",
        )
    if task.topic not in topology.topics:
        topology.declare(_raw_topic(task.topic, task.partitions))
    done = {"cleanup.policy": "compact,delete", "retention.ms": str(COMPLETION_TTL_MS)}
    if done_topic(task.topic) not in topology.topics:
        topology.declare(_raw_topic(done_topic(task.topic), 1, done))


def task_step(topology: Topology, topic_name: str, partitions: int) -> TaskStep:
    """The step reading ``topic_name``, added with its store when new."""
    roots = topology.sources.get(topic_name, [])
    for root in roots:
        for child in root.children:
            if isinstance(child, TaskStep):
                return child
    if roots or any(t.topic == topic_name and t.mode == "queue" for t in topology.tasks.values()):
        raise ConfigurationError(
            "topic", f"{topic_name!r} is read by a stream or queue tasks; tasks need their own"
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
