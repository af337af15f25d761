"""Riding out a sink whose destination cannot take writes.

A sink raises :class:`~millstream.errors.SinkBackpressure` from ``write`` or
``flush`` when its destination is down or full. The worker then does what an
aborted transaction does: nothing since the last checkpoint is committed, the
sinks forget what they buffered, state goes back to its last commit and input is
rewound to the committed offsets. It pauses its partitions for the sink's
``retry_after``, doubled with every signal in a row up to :data:`MAX_WAIT`, and goes
on; the first checkpoint that commits again resets the wait. The group keeps the
worker meanwhile: librdkafka heartbeats on its own thread, and the wait stays far
below ``max.poll.interval.ms``. Rebalances wait for the pause to end.
"""

from __future__ import annotations

import threading
from collections.abc import Collection

from millstream.errors import SinkBackpressure
from millstream.kafka import Consumer

#: Longest pause after a backpressure signal, in seconds.
MAX_WAIT = 30.0
#: Shortest pause, whatever the sink suggests.
MIN_WAIT = 0.1


class SinkOutage:
    """The backpressure signal waiting to be handled, and how many came in a row."""

    def __init__(self) -> None:
        self.pending: SinkBackpressure | None = None
        self._streak = 0

    def signal(self, pressure: SinkBackpressure) -> None:
        if self.pending is None:
            self.pending = pressure

    def take(self) -> tuple[SinkBackpressure, float]:
        """The pending signal and the seconds to pause for it."""
        pressure, self.pending = self.pending, None
        assert pressure is not None
        wait = min(max(pressure.retry_after, MIN_WAIT) * 2.0**self._streak, MAX_WAIT)
        self._streak += 1
        return pressure, wait

    def recovered(self) -> None:
        """A checkpoint committed: the next signal starts from its own retry_after."""
        self._streak = 0


def pause_input(
    consumer: Consumer,
    seconds: float,
    stop: threading.Event,
    keep_paused: Collection[tuple[str, int]],
) -> None:
    """Pause every assigned partition for ``seconds`` (less if ``stop`` is set), then
    resume them, except those in ``keep_paused`` (paused for another reason)."""
    partitions = [tp for tp in consumer.assignment() if (tp.topic, tp.partition) not in keep_paused]
    consumer.pause(partitions)
    try:
        stop.wait(seconds)
    finally:
        consumer.resume(partitions)
