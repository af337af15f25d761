"""The sink contract.

A worker hands a sink its records in batches with :meth:`Sink.write`, and calls
:meth:`Sink.flush` at every checkpoint *before* it commits the consumed offsets.
A sink must make every written record durable by the time ``flush`` returns, or
raise; if it raises, the offsets are not committed and the records are
processed again after a restart (at-least-once).

Two failures are the sink's to tell apart. A destination that cannot take writes
for now (a database down, HTTP 503, a full disk) raises
:class:`~millstream.errors.SinkBackpressure` with a ``retry_after``: nothing is lost,
the records are written again later. A record the destination refuses for good (a
constraint violation, HTTP 4xx) goes to ``context.dead_letter(record, error)``, with
its reason, and the rest of the batch goes on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from millstream.config import Settings
from millstream.kafka import ConsumedRecord, Producer


class SinkRecord(NamedTuple):
    """One record handed to a sink, with where it came from."""

    key: Any
    value: Any
    timestamp: int
    topic: str
    partition: int
    offset: int
    #: The consumed message it comes from (its original bytes go to the DLQ).
    source: ConsumedRecord | None = None


#: Where a sink sends a record its destination refuses for good: (record, reason).
DeadLetter = Callable[[SinkRecord, BaseException], None]


def _raise(record: SinkRecord, error: BaseException) -> None:
    raise error


@dataclass(frozen=True)
class SinkContext:
    """What the worker lends a sink when it opens: settings and the worker's producer."""

    app_id: str
    settings: Settings
    producer: Producer
    #: Sends a refused record to the app's dead-letter topic (without a worker: raises).
    dead_letter: DeadLetter = field(default=_raise)


class Sink(ABC):
    """Writes records to a destination outside the stream pipeline."""

    def open(self, context: SinkContext) -> None:  # noqa: B027 - optional hook
        """Called once by the worker before the first write."""

    @abstractmethod
    def write(self, records: Sequence[SinkRecord]) -> None:
        """Accept a batch. May buffer; durability is only promised by :meth:`flush`."""

    @abstractmethod
    def flush(self) -> None:
        """Make every record written so far durable, or raise."""

    def discard(self) -> None:  # noqa: B027 - optional hook
        """Forget what was written since the last successful :meth:`flush`: the worker
        goes back to its last commit and writes those records again (after a
        backpressure signal, or an aborted transaction)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Called after the last flush on shutdown."""
