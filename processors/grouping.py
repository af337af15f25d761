"""Grouped and windowed streams: ``stream.group_by(...).window(w).count()``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from millstream.errors import ConfigurationError
from millstream.processors.state.manager import StoreKind
from millstream.processors.stream import Stream
from millstream.processors.windows import aggregations
from millstream.processors.windows.aggregations import Aggregation
from millstream.processors.windows.base import Emit, LatePolicy, WindowStep
from millstream.processors.windows.definitions import Hopping, Session, Sliding, Window
from millstream.processors.windows.fixed import FixedWindowStep
from millstream.processors.windows.session import SessionWindowStep
from millstream.processors.windows.sliding import SlidingWindowStep

if TYPE_CHECKING:
    from millstream.processors.topology import Topology


class GroupedStream:
    """Records whose key is the group key, each key in exactly one partition."""

    def __init__(self, stream: Stream, source: str, topology: Topology) -> None:
        self._stream = stream
        self._source = source
        self._topology = topology

    def window(
        self,
        window: Window,
        *,
        name: str | None = None,
        backend: StoreKind = "memory",
        late: LatePolicy = "drop",
        idle_timeout: timedelta | float | None = None,
    ) -> WindowedStream:
        """Aggregate by ``window``; ``name`` names the store and its changelog topic,
        ``backend`` keeps the store in ``"memory"`` or in ``"rocksdb"`` (see docs/state.md).

        Raises:
            ConfigurationError: an option is invalid; the message names it.
        """
        if not isinstance(window, Window):
            raise ConfigurationError("window", f"{window!r} is not a millstream window")
        if backend not in ("memory", "rocksdb"):
            raise ConfigurationError("backend", f"must be 'memory' or 'rocksdb', not {backend!r}")
        if late not in ("drop", "topic"):
            raise ConfigurationError("late", "must be 'drop' or 'topic'")
        idle_ms = None
        if idle_timeout is not None:
            seconds = (
                idle_timeout.total_seconds()
                if isinstance(idle_timeout, timedelta)
                else float(idle_timeout)
            )
            if seconds <= 0:
                raise ConfigurationError("idle_timeout", "must be a positive duration")
            idle_ms = int(seconds * 1000)
        store_name = self._topology.unique_store_name(name or f"{window.kind}-window")
        return WindowedStream(
            self._stream, window, store_name, self._source, backend, late, idle_ms, self._topology
        )


class WindowedStream:
    """A grouped stream with a window; pick an aggregation to get a stream of results."""

    def __init__(
        self,
        stream: Stream,
        window: Window,
        store_name: str,
        source: str,
        backend: StoreKind,
        late: LatePolicy,
        idle_ms: int | None,
        topology: Topology,
    ) -> None:
        self._stream = stream
        self._window = window
        self._options: dict[str, Any] = {
            "store_name": store_name,
            "source": source,
            "store_kind": backend,
            "late": late,
            "idle_timeout_ms": idle_ms,
        }
        self._topology = topology

    def count(self) -> WindowResults:
        return self._build(aggregations.count())

    def sum(self, fn: Callable[[Any], Any]) -> WindowResults:
        return self._build(aggregations.total(fn))

    def min(self, fn: Callable[[Any], Any]) -> WindowResults:
        return self._build(aggregations.minimum(fn))

    def max(self, fn: Callable[[Any], Any]) -> WindowResults:
        return self._build(aggregations.maximum(fn))

    def mean(self, fn: Callable[[Any], Any]) -> WindowResults:
        return self._build(aggregations.mean(fn))

    def reduce(self, fn: Callable[[Any, Any], Any]) -> WindowResults:
        """Combine values pairwise with ``fn(accumulated, value)``."""
        return self._build(aggregations.reduce(fn))

    def aggregate(
        self,
        initial: Any,
        add: Callable[[Any, Any], Any],
        merge: Callable[[Any, Any], Any] | None = None,
    ) -> WindowResults:
        """Fold values with ``add(acc, value)`` from ``initial`` (a value or a factory)."""
        return self._build(aggregations.aggregate(initial, add, merge))

    def _build(self, aggregation: Aggregation) -> WindowResults:
        window = self._window
        step: WindowStep
        if isinstance(window, Hopping):
            step = FixedWindowStep(window, aggregation=aggregation, **self._options)
        elif isinstance(window, Sliding):
            step = SlidingWindowStep(window, aggregation=aggregation, **self._options)
        elif isinstance(window, Session):
            step = SessionWindowStep(window, aggregation=aggregation, **self._options)
        else:
            raise ConfigurationError("window", f"unsupported window {window!r}")
        self._topology.add_store(step)
        # Grouped streams and window results extend the stream they come from: the
        # DSL classes share their pipeline position on purpose.
        stream = self._stream._then(step)  # noqa: SLF001
        return WindowResults(stream, step)


class WindowResults(Stream):
    """The results of a windowed aggregation: ``.final()`` (default) or ``.current()``.

    Each result has the group key as key and ``{"start", "end", "value"}`` as value.
    The emission is chosen once, before the results go anywhere: it belongs to the
    aggregation, so every step wired below it sees the same results.
    """

    def __init__(self, stream: Stream, step: WindowStep) -> None:
        super().__init__(stream._step, stream._topology, stream._source)  # noqa: SLF001
        self._window_step = step

    def final(self) -> WindowResults:
        """Emit each window once, when it closes (the default).

        Raises:
            ConfigurationError: the results already go on to another step with
                ``.current()`` emission.
        """
        return self._emit("final")

    def current(self) -> WindowResults:
        """Emit a window's aggregate after every update.

        Raises:
            ConfigurationError: the results already go on to another step with
                ``.final()`` emission.
        """
        return self._emit("current")

    def _emit(self, mode: Emit) -> WindowResults:
        step = self._window_step
        if step.emit_mode != mode and step.children:
            wired = ", ".join(child.name for child in step.children)
            raise ConfigurationError(
                f"{mode}()",
                f"the results of window {step.store_name!r} already go on to {wired} "
                f"with .{step.emit_mode}() emission; call .{mode}() before wiring them",
            )
        step.emit_mode = mode
        return self
