"""millstream: the same work through the public DSL, run by one worker in this process.

- passthrough: ``app.stream(src).to(out)`` (json serde: parse + serialize)
- stateless: ``.filter(keep).map(enrich).to(out)``
- window: ``.group_by_key().window(Tumbling(10 s), backend=...).aggregate(count, sum)``,
  final results only
- table: a processor writing every record into a table (the restore scenario)

Logs at INFO to stderr: the harness reads the "restored ..." lines.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta
from typing import Any

from bench.contenders.common import COMMIT_INTERVAL, WINDOW_SECONDS, enrich, keep, parse_args
from millstream import App, windows
from millstream.processors.handlers import ProcessorContext, Record


def count_and_sum(acc: list[float], value: dict[str, Any]) -> list[float]:
    return [acc[0] + 1, acc[1] + value["amount"]]


def build(
    scenario: str, group: str, source: str, output: str, partitions: int, store: Any, eos: bool
) -> App:
    app = App(
        group,
        processing_guarantee="exactly_once" if eos else "at_least_once",
        commit_interval=COMMIT_INTERVAL,
    )
    # str keys: millstream's default (window state keys are stored as JSON).
    src = app.topic(source, partitions=partitions)
    out = app.topic(output, partitions=partitions)
    stream = app.stream(src)
    if scenario == "passthrough":
        stream.to(out)
    elif scenario == "stateless":
        stream.filter(keep).map(enrich).to(out)
    elif scenario == "window":
        window = windows.Tumbling(timedelta(seconds=WINDOW_SECONDS))
        results = (
            stream.group_by_key()
            .window(window, backend=store)
            .aggregate(lambda: [0, 0.0], count_and_sum)
        )
        results.final().to(out)
    else:
        table = app.table("restore", backend=store)

        def remember(record: Record, ctx: ProcessorContext) -> None:
            ctx.table("restore")[record.key] = record.value["amount"]

        app.processor(src, tables=[table])(remember)
    return app


def main() -> None:
    args = parse_args(__doc__ or "")
    os.environ["MILLSTREAM_BOOTSTRAP_SERVERS"] = args.bootstrap
    os.environ["MILLSTREAM_LOCAL_DIR"] = args.state_dir
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    app = build(
        args.scenario,
        args.group,
        args.input,
        args.output,
        args.partitions,
        args.store,
        args.guarantee == "exactly_once",
    )
    stats = app.run()
    print(f"millstream done: {stats}", file=sys.stderr)


if __name__ == "__main__":
    main()
