"""The stream DSL: chainable, branchable operations over the records of a topic.

Each call adds a step below the current one and returns a new :class:`Stream`
for it, so ``s.map(f).to(a)`` and ``s.filter(g).to(b)`` are two branches of
``s``. Functions receive the record value; the key is preserved unless
:meth:`Stream.rekey` or :meth:`Stream.group_by` changes it, and the timestamp is
always preserved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from millstream.processors.operations import (
    FilterStep,
    FlatMapStep,
    MapStep,
    PeekStep,
    RekeyStep,
    SinkStep,
    Step,
    ToTopicStep,
)
from millstream.sinks.base import Sink
from millstream.topics import Topic

if TYPE_CHECKING:
    from millstream.processors.grouping import GroupedStream
    from millstream.processors.tables import GlobalTable
    from millstream.processors.topology import Topology


class Stream:
    """A position in a pipeline. Build pipelines with ``app.stream(topic)``."""

    def __init__(self, step: Step, topology: Topology, source: str) -> None:
        self._step = step
        self._topology = topology
        self._source = source

    def _then(self, step: Step) -> Stream:
        self._step.children.append(step)
        return Stream(step, self._topology, self._source)

    def map(self, fn: Callable[[Any], Any]) -> Stream:
        """Replace each value with ``fn(value)``."""
        return self._then(MapStep(fn))

    def filter(self, fn: Callable[[Any], bool]) -> Stream:
        """Keep the records whose value makes ``fn`` true."""
        return self._then(FilterStep(fn))

    def flat_map(self, fn: Callable[[Any], Iterable[Any]]) -> Stream:
        """Replace each value with zero or more values from ``fn(value)``; they keep the key."""
        return self._then(FlatMapStep(fn))

    def peek(self, fn: Callable[[Any], object]) -> Stream:
        """Call ``fn(value)`` for its side effect; records pass unchanged."""
        return self._then(PeekStep(fn))

    def rekey(self, fn: Callable[[Any], Any]) -> Stream:
        """Set each record's key to ``fn(value)``. Records stay in their partition."""
        return self._then(RekeyStep(fn))

    def to(self, topic: Topic) -> Stream:
        """Produce every record to ``topic`` (with its serdes); returns a stream to go on from."""
        if not isinstance(topic, Topic):
            raise TypeError("to() takes a topic declared with app.topic(...)")
        self._topology.add_output(topic)
        return self._then(ToTopicStep(topic.name, topic.key_serde, topic.value_serde))

    def sink(self, sink: Sink) -> Stream:
        """Hand every record to ``sink``; it is flushed at each checkpoint before the commit."""
        if not isinstance(sink, Sink):
            raise TypeError(f"sink() takes a millstream Sink, not {type(sink).__name__}")
        self._topology.add_sink(sink)
        return self._then(SinkStep(sink))

    def group_by(
        self, fn: Callable[[Any], Any], *, name: str | None = None, partitions: int | None = None
    ) -> GroupedStream:
        """Re-key by ``fn(value)`` through the internal topic ``{app_id}-{name}-repartition``,
        so that all records of a key are processed in one partition.

        ``partitions`` defaults to the partition count of this stream's source topic.
        Under at-least-once, a worker crash can repeat records in the repartition topic.
        """
        from millstream.processors.grouping import GroupedStream

        topic = self._topology.repartition_topic(name or "group-by", self._source, partitions)
        self.rekey(fn).to(topic)
        return GroupedStream(self._topology.stream(topic), topic.name, self._topology)

    def group_by_key(self) -> GroupedStream:
        """Group by the existing record key, without repartitioning: the input must already
        be partitioned by that key."""
        from millstream.processors.grouping import GroupedStream

        return GroupedStream(self, self._source, self._topology)

    def join(
        self,
        table: GlobalTable,
        *,
        on: Callable[[Any], Any] | None = None,
        how: Literal["inner", "left"] = "inner",
        merge: Callable[[Any, Any], Any] | None = None,
    ) -> Stream:
        """Enrich each record with the current value of ``table`` for ``on(value)`` (default:
        the record key). ``inner`` drops records with no table value; ``left`` keeps them with
        ``None``. ``merge(value, table_value)`` builds the result; by default dicts are merged
        (table fields under the key ``table.name``) and anything else becomes a pair.
        """
        from millstream.processors.tables import JoinStep

        return self._then(JoinStep(table, on, how, merge))
