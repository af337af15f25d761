"""Pipeline steps. Each step takes a batch of rows, transforms it, and hands the
result to its children; a stream with two branches is a step with two children.

A step that raises for one record sends that record to the dead-letter queue
and goes on with the rest of the batch. Steps must not mutate values in place:
branches share the rows they receive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from millstream.kafka import ANY_PARTITION
from millstream.processors.assigned import AssignedPartition
from millstream.processors.collector import RecordCollector
from millstream.processors.rows import Row
from millstream.processors.state.manager import StoreSpec
from millstream.serde import Serde, fast_serializer
from millstream.sinks.base import Sink, SinkRecord


class Step:
    """A node in the pipeline tree."""

    name = "step"

    def __init__(self) -> None:
        self.children: list[Step] = []
        self.collector: RecordCollector | None = None

    def bind(self, collector: RecordCollector) -> None:
        """Send this step's output (and that of every step below it) through ``collector``."""
        self.collector = collector
        for child in self.children:
            child.bind(collector)

    def walk(self) -> list[Step]:
        """This step and every step below it, depth first."""
        steps: list[Step] = [self]
        for child in self.children:
            steps.extend(child.walk())
        return steps

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        """Transform ``rows`` and pass the result on. The base step passes them unchanged."""
        self.emit(rows, part)

    def emit(self, rows: list[Row], part: AssignedPartition) -> None:
        if rows:
            for child in self.children:
                child.process(rows, part)

    def fail(self, row: Row, error: BaseException) -> None:
        assert self.collector is not None, "step used before bind()"
        self.collector.dead_letter(row[3], error, self.name)


class MapStep(Step):
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn
        self.name = f"map({_describe(fn)})"

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        fn = self.fn
        out: list[Row] = []
        append = out.append
        for row in rows:
            try:
                append((row[0], fn(row[1]), row[2], row[3]))
            except Exception as exc:
                self.fail(row, exc)
        self.emit(out, part)


class FilterStep(Step):
    def __init__(self, fn: Callable[[Any], bool]) -> None:
        super().__init__()
        self.fn = fn
        self.name = f"filter({_describe(fn)})"

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        fn = self.fn
        out: list[Row] = []
        append = out.append
        for row in rows:
            try:
                if fn(row[1]):
                    append(row)
            except Exception as exc:
                self.fail(row, exc)
        self.emit(out, part)


class FlatMapStep(Step):
    def __init__(self, fn: Callable[[Any], Iterable[Any]]) -> None:
        super().__init__()
        self.fn = fn
        self.name = f"flat_map({_describe(fn)})"

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        fn = self.fn
        out: list[Row] = []
        extend = out.extend
        for row in rows:
            key, _, ts, msg = row
            try:
                extend([(key, item, ts, msg) for item in fn(row[1])])
            except Exception as exc:
                self.fail(row, exc)
        self.emit(out, part)


class PeekStep(Step):
    def __init__(self, fn: Callable[[Any], object]) -> None:
        super().__init__()
        self.fn = fn
        self.name = f"peek({_describe(fn)})"

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        fn = self.fn
        out: list[Row] = []
        append = out.append
        for row in rows:
            try:
                fn(row[1])
                append(row)
            except Exception as exc:
                self.fail(row, exc)
        self.emit(out, part)


class RekeyStep(Step):
    """Replaces each record's key with ``fn(value)``. No repartitioning happens."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn
        self.name = f"rekey({_describe(fn)})"

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        fn = self.fn
        out: list[Row] = []
        append = out.append
        for row in rows:
            try:
                append((fn(row[1]), row[1], row[2], row[3]))
            except Exception as exc:
                self.fail(row, exc)
        self.emit(out, part)


class ToTopicStep(Step):
    """Produces every row to a topic, then passes the rows on unchanged."""

    def __init__(self, topic: str, key_serde: Serde, value_serde: Serde) -> None:
        super().__init__()
        self.topic = topic
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.name = f"to({topic})"

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        collector = self.collector
        assert collector is not None, "step used before bind()"
        produce, topic = collector.producer.produce, self.topic
        key_of, value_of = fast_serializer(self.key_serde), fast_serializer(self.value_serde)
        slow = 0
        for row in rows:
            key, value, timestamp, _ = row
            try:
                # Arguments by position: see millstream.kafka.clients.ANY_PARTITION.
                produce(
                    topic,
                    None if value is None else value_of(value),
                    None if key is None else key_of(key),
                    ANY_PARTITION,
                    None,
                    None,
                    timestamp,
                )
            except Exception:
                # The slow path counts what it sends itself.
                slow += 1
                self._produce_carefully(row)
        collector.produced(len(rows) - slow, topic)
        self.emit(rows, part)

    def _produce_carefully(self, row: Row) -> None:
        """The slow path for one row: full serdes, waiting on a full queue, dead letters."""
        assert self.collector is not None
        try:
            key = self.key_serde.serialize(row[0])
            value = self.value_serde.serialize(row[1])
            self.collector.send(self.topic, key, value, row[2])
        except Exception as exc:
            self.fail(row, exc)


class SinkStep(Step):
    """Hands every row to a sink as a batch, then passes the rows on unchanged."""

    def __init__(self, sink: Sink) -> None:
        super().__init__()
        self.sink = sink
        self.name = f"sink({type(sink).__name__})"

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        records = [
            SinkRecord(k, v, ts, msg.topic(), msg.partition(), msg.offset(), msg)
            for k, v, ts, msg in rows
        ]
        self.sink.write(records)
        self.emit(rows, part)


def _describe(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


class StatefulStep(Step):
    """A step that owns stores, partitioned like its ``source`` topic."""

    source: str

    def store_specs(self) -> list[StoreSpec]:
        raise NotImplementedError

    def open_partition(self, part: AssignedPartition) -> None:
        """Called after the partition's stores were restored, before its first batch."""

    def punctuate(self, part: AssignedPartition, now: float) -> None:
        """Called about once a second with the wall-clock time, for time-driven work."""
