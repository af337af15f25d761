"""The publishing side of the tasks scenario, the same for every task queue.

A client process runs one phase and writes what it measured as JSON to ``--out``:

- ``warm``: one round trip, waiting up to ``--timeout`` s (the worker may still be
  starting): the harness's signal that the worker is ready.
- ``throughput``: ``--count`` sends, then a wait for every handle's result in send
  order; the time runs from the first send until the last result is in.
- ``latency``: ``--count`` sequential round trips (send, wait for its result), each
  timed on its own.

``throughput`` and ``latency`` first make one untimed round trip, so connecting and
fetching metadata fall outside the timed part. Every wait is bounded (``--timeout`` s
per round trip, ``--time-limit`` s for a whole throughput phase); a result other than
the argument sent is an error.

Standard library only: this module runs inside the peers' virtualenvs.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

PHASES = ("warm", "throughput", "latency")
Handle = TypeVar("Handle")


class ClientError(Exception):
    """A round trip returned something other than its argument."""


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """``client`` and ``worker`` sub-commands; ``worker`` options are the caller's to add."""
    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="run a worker until SIGTERM")
    worker.add_argument("--app", required=True, help="application / queue name")
    worker.add_argument("--redis", default="", help="Redis URL (Celery)")
    worker.add_argument("--pool", default="", help="worker pool (Celery)")
    worker.add_argument("--concurrency", type=int, default=0, help="pool size (Celery)")
    worker.add_argument("--mode", default="ordered", help="task mode (millstream)")
    worker.add_argument("--workers", type=int, default=1, help="worker processes (millstream)")
    client = sub.add_parser("client", help="run one phase and write its figures")
    client.add_argument("--app", required=True, help="application / queue name")
    client.add_argument("--redis", default="", help="Redis URL (Celery)")
    client.add_argument("--mode", default="ordered", help="task mode (millstream)")
    client.add_argument("--phase", choices=PHASES, required=True)
    client.add_argument("--count", type=int, default=1, help="tasks or round trips")
    client.add_argument("--timeout", type=float, default=10.0, help="s per result")
    client.add_argument("--time-limit", type=float, default=120.0, help="s per phase")
    client.add_argument("--out", type=Path, required=True, help="JSON file to write")
    return parser.parse_args(argv)


def run(
    args: argparse.Namespace,
    send: Callable[[int], Handle],
    wait: Callable[[Handle, float], Any],
    timeouts: tuple[type[BaseException], ...],
) -> None:
    """Run ``args.phase`` with ``send(i)`` (publish task ``i``, return its handle) and
    ``wait(handle, seconds)`` (its result), and write the figures to ``args.out``.

    A wait that raises one of ``timeouts`` ends a throughput phase early (the figures
    say how many results came); in the other phases it propagates.
    """
    if args.phase == "warm":
        started = time.monotonic()
        _round_trip(send, wait, 0, args.timeout)
        figures: dict[str, Any] = {"seconds": time.monotonic() - started}
    else:
        _round_trip(send, wait, 0, args.timeout)
        if args.phase == "throughput":
            figures = _throughput(args, send, wait, timeouts)
        else:
            figures = _latency(args, send, wait)
    args.out.write_text(json.dumps(figures))


def _round_trip(
    send: Callable[[int], Handle], wait: Callable[[Handle, float], Any], i: int, timeout: float
) -> None:
    value = wait(send(i), timeout)
    if value != i:
        raise ClientError(f"task {i} returned {value!r}")


def _throughput(
    args: argparse.Namespace,
    send: Callable[[int], Handle],
    wait: Callable[[Handle, float], Any],
    timeouts: tuple[type[BaseException], ...],
) -> dict[str, Any]:
    cpu0, started = time.process_time(), time.monotonic()
    deadline = started + args.time_limit
    handles = [send(i) for i in range(args.count)]
    sent = time.monotonic() - started
    done = 0
    try:
        for i, handle in enumerate(handles):
            value = wait(handle, max(deadline - time.monotonic(), 0.001))
            if value != i:
                raise ClientError(f"task {i} returned {value!r}")
            done += 1
    except timeouts:
        pass
    return {
        "tasks": args.count,
        "completed": done,
        "seconds": time.monotonic() - started,
        "send_seconds": sent,
        "cpu_s": time.process_time() - cpu0,
    }


def _latency(
    args: argparse.Namespace, send: Callable[[int], Handle], wait: Callable[[Handle, float], Any]
) -> dict[str, Any]:
    cpu0 = time.process_time()
    samples = []
    for i in range(args.count):
        started = time.perf_counter()
        value = wait(send(i), args.timeout)
        samples.append((time.perf_counter() - started) * 1000)
        if value != i:
            raise ClientError(f"task {i} returned {value!r}")
    return {"samples_ms": samples, "cpu_s": time.process_time() - cpu0}
