"""Publishing the live stream: at a set rate (or as fast as possible), for a while.

    python -m examples.fraud.publishing [--rate 2000] [--seconds 60] [--seed 0]

publishes to the topics of :class:`examples.fraud.detectors.FraudConfig` (from the
environment), as the ``generator`` service of docker-compose.yml does. Every
``tick`` it makes the arrivals due by then (``rate`` times the seconds elapsed) and
the follow-ups of patterns that are due, stamps them with the wall clock and
publishes them; every :data:`~examples.fraud.stream.BLOCKLIST_EVERY` seconds it puts
one more merchant on the blocklist. When the time is up it still publishes the
follow-ups already scheduled (the rest of a burst, a second hop), so no pattern is
cut short.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from examples.fraud.detectors import FraudConfig
from examples.fraud.stream import (
    BLOCKLIST_AT_START,
    BLOCKLIST_EVERY,
    Event,
    LiveGenerator,
    StreamCounts,
    label_headers,
)
from millstream.config import load_settings
from millstream.producers import Publisher

#: Seconds between two rounds of publishing at a set rate.
TICK = 0.01
#: Arrivals per round when publishing as fast as possible.
UNPACED_BATCH = 500


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class LiveStream:
    """Publishes a :class:`LiveGenerator`'s events to ``config``'s topics."""

    def __init__(self, publisher: Publisher, generator: LiveGenerator, config: FraudConfig) -> None:
        self.publisher = publisher
        self.generator = generator
        self.topics = {"transactions": config.transactions, "blocklist": config.blocklist}
        self.counts = StreamCounts()

    def send(self, events: list[Event]) -> None:
        for event in events:
            self.publisher.publish(
                self.topics[event.topic],
                event.value,
                key=event.key,
                headers=label_headers(event.pattern) if event.topic == "transactions" else None,
                timestamp=event.value.get("timestamp", event.value.get("since")),
            )
            self.counts.add(event)

    def open_blocklist(self) -> None:
        """The merchants listed before the stream starts."""
        self.send([self.generator.list_merchant(now_ms()) for _ in range(BLOCKLIST_AT_START)])
        self.publisher.flush()

    def warm_up(self, per_card: int) -> int:
        """Ordinary purchases of every card, as fast as possible; returns how many."""
        events = self.generator.warm_up(now_ms(), per_card)
        self.send(events)
        self.publisher.flush()
        return len(events)

    def run(
        self,
        rate: float | None,
        seconds: float,
        stop: threading.Event | None = None,
        on_second: Callable[[float, StreamCounts], object] | None = None,
    ) -> StreamCounts:
        """Publish for ``seconds`` at ``rate`` transactions/s (None: as fast as possible),
        then the follow-ups still scheduled; returns what was published in all."""
        stop = stop or threading.Event()
        started, made, listed, reported = time.monotonic(), 0, 1, 0
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if elapsed >= seconds:
                break
            at = now_ms()
            if elapsed >= listed * BLOCKLIST_EVERY:
                self.send([self.generator.list_merchant(at)])
                listed += 1
            wanted = int(elapsed * rate) if rate else made + UNPACED_BATCH
            self.send(self.generator.arrivals(wanted - made, at) + self.generator.due(at))
            made = wanted
            if on_second is not None and int(elapsed) > reported:
                reported = int(elapsed)
                on_second(elapsed, self.counts)
            if rate:
                time.sleep(TICK)
        while self.generator.pending() and not stop.is_set():
            self.send(self.generator.due(now_ms()))
            time.sleep(TICK)
        self.publisher.flush()
        return self.counts


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m examples.fraud.publishing``."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.fraud.publishing", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="transactions/s; 0: unpaced")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-up", type=int, default=5, help="purchases per card first")
    parser.add_argument(
        "--alive-file", type=Path, default=None, help="touched every second while streaming"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def alive(_elapsed: float, _counts: StreamCounts) -> None:
        if args.alive_file is not None:
            args.alive_file.touch()

    config = FraudConfig.from_env()
    with Publisher(settings=load_settings()) as publisher:
        stream = LiveStream(publisher, LiveGenerator(args.seed), config)
        stream.open_blocklist()
        stream.warm_up(args.warm_up)
        counts = stream.run(args.rate or None, args.seconds, on_second=alive)
    print(f"published {counts.transactions} transactions, fraud by pattern: {counts.fraud}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
