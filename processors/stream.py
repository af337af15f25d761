"""The stream DSL: chainable, branchable operations over the records of a topic.

Each call adds a step below the current one and returns a new :class:`Stream`
for it, so ``s.map(f).to(a)`` and ``s.filter(g).to(b)`` are two branches of
``s``. Functions receive the record value; the key is preserved unless
:meth:`Stream.rekey` changes it, and the timestamp is always preserved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

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


class Stream:
    """A position in a pipeline. Build pipelines with ``app.stream(topic)``."""

    def __init__(self, step: Step, on_output: Callable[[Topic | Sink], None]) -> None:
        self._step = step
        self._on_output = on_output

    def _then(self, step: Step) -> Stream:
        self._step.children.append(step)
        return Stream(step, self._on_output)

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
        self._on_output(topic)
        return self._then(ToTopicStep(topic.name, topic.key_serde, topic.value_serde))

    def sink(self, sink: Sink) -> Stream:
        """Hand every record to ``sink``; it is flushed at each checkpoint before the commit."""
        if not isinstance(sink, Sink):
            raise TypeError(f"sink() takes a millstream Sink, not {type(sink).__name__}")
        self._on_output(sink)
        return self._then(SinkStep(sink))
