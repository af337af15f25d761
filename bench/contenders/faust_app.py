"""faust-streaming: the same work as a faust agent, in its own virtualenv.

- passthrough: ``async for key, value in stream.items(): await out.send(...)``
- stateless: the same loop with the filter and map
- window: a tumbling(10 s) table relative to the stream (the record timestamp) holding
  ``[count, sum]`` per key, in faust's memory store with its changelog topic; results
  are sent from ``on_window_close``. Faust closes windows by wall clock
  (``expires`` after their end, checked every ``table_cleanup_interval``), not by
  stream time, so its output differs from the others; the benchmark measures input
  consumption (committed offsets) for the window scenario.

Offsets commit every second (``broker_commit_interval``) like every other contender.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import faust

from bench.contenders.common import COMMIT_INTERVAL, WINDOW_SECONDS, enrich, keep, parse_args

#: An agent: a coroutine function over a faust stream (faust is untyped here).
Agent = Callable[[Any], Coroutine[Any, Any, None]]


def make_app(args: Namespace) -> Any:
    return faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=str(Path(args.state_dir) / "faust"),
        topic_partitions=args.partitions,
        topic_disable_leader=True,
        broker_commit_interval=COMMIT_INTERVAL,
        table_cleanup_interval=1.0,
        producer_linger=0.005,
        consumer_auto_offset_reset="earliest",
        processing_guarantee=args.guarantee,
        web_enabled=False,
    )


def stream_agent(scenario: str, output: Any) -> Agent:
    """The passthrough or stateless agent: one ``send`` per record that is kept."""
    if scenario == "passthrough":

        async def passthrough(stream: Any) -> None:
            async for key, value in stream.items():
                await output.send(key=key, value=value)

        return passthrough

    async def stateless(stream: Any) -> None:
        async for key, value in stream.items():
            if keep(value):
                await output.send(key=key, value=enrich(value))

    return stateless


def window_agent(app: Any, output: Any, partitions: int) -> Agent:
    """A tumbling table of ``[count, sum]`` per key; closed windows go to ``output``."""

    def emit(key: Any, value: Any) -> None:
        group_key, (start, end) = key
        result = {"start": int(start * 1000), "end": int(end * 1000), "value": value}
        output.send_soon(key=group_key, value=result)

    table = app.Table(
        "totals", default=lambda: [0, 0.0], on_window_close=emit, partitions=partitions
    ).tumbling(WINDOW_SECONDS, expires=timedelta(seconds=WINDOW_SECONDS))
    windowed = table.relative_to_stream()

    async def window(stream: Any) -> None:
        async for key, value in stream.items():
            count, total = windowed[key].value()
            windowed[key] = [count + 1, total + value["amount"]]

    return window


def main() -> None:
    args = parse_args(__doc__ or "")
    app = make_app(args)
    source = app.topic(args.input, key_serializer="raw", value_serializer="json")
    output = app.topic(args.output, key_serializer="raw", value_serializer="json")
    if args.scenario in ("passthrough", "stateless"):
        agent = stream_agent(args.scenario, output)
    elif args.scenario == "window":
        agent = window_agent(app, output, args.partitions)
    else:
        raise SystemExit(f"no faust version of {args.scenario}")
    app.agent(source, name=args.scenario)(agent)
    faust.Worker(app, loglevel="WARNING").execute_from_commandline()


if __name__ == "__main__":
    main()
