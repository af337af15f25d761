"""A topology: everything an application declared, in the form the worker runs.

It maps each source topic to the root steps that read it, and lists the topics
and sinks the pipelines write to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from millstream.processors.operations import Step
from millstream.processors.stream import Stream
from millstream.sinks.base import Sink
from millstream.topics import Topic


class SourceStep(Step):
    """The root of a stream: receives deserialized rows of one source topic."""

    def __init__(self, topic: Topic) -> None:
        super().__init__()
        self.topic = topic
        self.name = f"source({topic.name})"


@dataclass
class Topology:
    """Sources, outputs and declared topics of one application."""

    app_id: str
    topics: dict[str, Topic] = field(default_factory=dict)
    sources: dict[str, list[SourceStep]] = field(default_factory=dict)
    outputs: list[Topic] = field(default_factory=list)
    sinks: list[Sink] = field(default_factory=list)

    @property
    def dlq_topic(self) -> str:
        return f"{self.app_id}-dlq"

    def declare(self, topic: Topic) -> Topic:
        """Register ``topic``; declaring the same name twice must agree on the partitions."""
        known = self.topics.get(topic.name)
        if known is not None and topic.partitions not in (None, known.partitions):
            raise ValueError(
                f"topic {topic.name!r} declared with {known.partitions} and "
                f"{topic.partitions} partitions"
            )
        if known is None or known.partitions is None:
            self.topics[topic.name] = topic
        return self.topics[topic.name]

    def stream(self, topic: Topic) -> Stream:
        """A new stream reading ``topic`` from the start of its committed offsets."""
        source = SourceStep(self.declare(topic))
        self.sources.setdefault(topic.name, []).append(source)
        return Stream(source, self._add_output)

    def _add_output(self, output: Topic | Sink) -> None:
        if isinstance(output, Topic):
            self.declare(output)
            if output not in self.outputs:
                self.outputs.append(output)
        elif output not in self.sinks:
            self.sinks.append(output)
