"""A topology: everything an application declared, in the form the worker runs.

It maps each source topic to the root steps that read it, lists the topics and
sinks the pipelines write to, the stateful steps with their stores, and the
internal topics (repartition, changelog) whose partition counts follow another
topic's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from millstream.errors import ConfigurationError
from millstream.processors.assigned import AssignedPartition
from millstream.processors.operations import StatefulStep, Step
from millstream.processors.rows import Row
from millstream.processors.state.changelog import CHANGELOG_CONFIG
from millstream.processors.state.codec import hashable
from millstream.processors.state.manager import StoreSpec
from millstream.processors.stream import Stream
from millstream.serde import JsonSerde, resolve_serde
from millstream.sinks.base import Sink
from millstream.topics import Topic

if TYPE_CHECKING:
    from millstream.processors.tables import GlobalTable
    from millstream.processors.tasks.definition import AnyTask


class SourceStep(Step):
    """The root of a stream: receives deserialized rows of one source topic.

    With a ``timestamp`` extractor, each row's event time becomes ``timestamp(value)``.
    """

    def __init__(self, topic: Topic, timestamp: Callable[[Any], int] | None = None) -> None:
        super().__init__()
        self.topic = topic
        self.timestamp = timestamp
        self.name = f"source({topic.name})"

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        extract = self.timestamp
        if extract is None:
            self.emit(rows, part)
            return
        out: list[Row] = []
        for row in rows:
            try:
                out.append((row[0], row[1], int(extract(row[1])), row[3]))
            except Exception as exc:
                self.fail(row, exc)
        self.emit(out, part)


class GroupKeySerde:
    """JSON keys of repartition topics. A compound key the grouping function returned
    as a tuple comes back as a tuple, not a list, so windows and tables can hash it."""

    name = "json-group-key"
    _json = JsonSerde()

    def serialize(self, obj: Any) -> bytes | None:
        return self._json.serialize(obj)

    def deserialize(self, data: bytes | None) -> Any:
        return hashable(self._json.deserialize(data))


@dataclass
class Topology:
    """Sources, outputs, stores and declared topics of one application."""

    app_id: str
    topics: dict[str, Topic] = field(default_factory=dict)
    sources: dict[str, list[SourceStep]] = field(default_factory=dict)
    outputs: list[Topic] = field(default_factory=list)
    sinks: list[Sink] = field(default_factory=list)
    stateful: list[StatefulStep] = field(default_factory=list)
    global_tables: list[GlobalTable] = field(default_factory=list)
    #: internal topic -> the topic whose partition count it copies
    partitions_like: dict[str, str] = field(default_factory=dict)
    #: topic -> the class of its assigned partitions, where not the plain one
    partition_types: dict[str, type[AssignedPartition]] = field(default_factory=dict)
    #: tasks by name
    tasks: dict[str, AnyTask] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)

    @property
    def dlq_topic(self) -> str:
        return f"{self.app_id}-dlq"

    @property
    def late_topic(self) -> str:
        return f"{self.app_id}-late"

    def declare(self, topic: Topic) -> Topic:
        """Register ``topic``; declaring the same name twice must agree on the partitions."""
        known = self.topics.get(topic.name)
        if (
            known is not None
            and None not in (known.partitions, topic.partitions)
            and known.partitions != topic.partitions
        ):
            raise ConfigurationError(
                "partitions",
                f"topic {topic.name!r} declared with {known.partitions} and "
                f"{topic.partitions} partitions",
            )
        if known is None or known.partitions is None:
            self.topics[topic.name] = topic
        return self.topics[topic.name]

    def stream(self, topic: Topic, timestamp: Callable[[Any], int] | None = None) -> Stream:
        """A new stream reading ``topic``."""
        source = SourceStep(self.declare(topic), timestamp)
        self.sources.setdefault(topic.name, []).append(source)
        return Stream(source, self, topic.name)

    def add_output(self, topic: Topic) -> None:
        self.declare(topic)
        if topic not in self.outputs:
            self.outputs.append(topic)

    def add_sink(self, sink: Sink) -> None:
        if sink not in self.sinks:
            self.sinks.append(sink)

    def unique_name(self, name: str) -> str:
        """Reserve ``name`` for an internal topic or store; a clash gets a numbered suffix."""
        candidate, n = name, 1
        while candidate in self._names:
            n += 1
            candidate = f"{name}-{n}"
        self._names.add(candidate)
        return candidate

    unique_store_name = unique_name

    def repartition_topic(self, name: str, source: str, partitions: int | None) -> Topic:
        name = self.unique_name(name)
        topic = Topic(
            f"{self.app_id}-{name}-repartition",
            partitions,
            key_serde=GroupKeySerde(),
            value_serde=resolve_serde("json"),
            # Records carry event times: time-based retention could delete them before
            # they are consumed. The worker purges what it has committed instead.
            config={"retention.ms": "-1"},
        )
        if partitions is None:
            self.partitions_like[topic.name] = source
        return self.declare(topic)

    def add_store(self, step: StatefulStep) -> None:
        self.stateful.append(step)
        for spec in step.store_specs():
            changelog = Topic(spec.changelog(self.app_id), config=dict(CHANGELOG_CONFIG))
            self.partitions_like[changelog.name] = spec.source
            self.declare(changelog)

    def store_specs(self) -> list[StoreSpec]:
        return [spec for step in self.stateful for spec in step.store_specs()]

    def stateful_steps(self, topic: str) -> list[StatefulStep]:
        return [step for step in self.stateful if step.source == topic]

    def repartition_topics(self) -> set[str]:
        return {name for name in self.partitions_like if name.endswith("-repartition")}

    def internal_topics(self) -> set[str]:
        return set(self.partitions_like) | {self.dlq_topic, self.late_topic}
