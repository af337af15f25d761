"""Quix Streams 3.x: the same work as a StreamingDataFrame, in its own virtualenv.

- passthrough: ``sdf.to_topic(out)`` (json deserializer and serializer)
- stateless: ``sdf.filter(keep).apply(enrich).to_topic(out)``
- window: ``sdf.tumbling_window(10 s).agg(count=Count(), sum=Sum("amount"))
  .final(closing_strategy="partition")``: windows close on partition stream time,
  as in millstream; state in RocksDB (Quix's only store) with changelog topics.

Commits every second (Quix's default is 5 s) like every other contender.
"""

from __future__ import annotations

from datetime import timedelta

from quixstreams import Application
from quixstreams.dataframe.windows import Count, Sum

from bench.contenders.common import COMMIT_INTERVAL, WINDOW_SECONDS, enrich, keep, parse_args


def main() -> None:
    args = parse_args(__doc__ or "")
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=COMMIT_INTERVAL,
        processing_guarantee="exactly-once"
        if args.guarantee == "exactly_once"
        else "at-least-once",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(args.input, key_deserializer="bytes", value_deserializer="json")
    output = app.topic(args.output, key_serializer="bytes", value_serializer="json")
    sdf = app.dataframe(topic=source)
    if args.scenario == "stateless":
        sdf = sdf.filter(keep).apply(enrich)
    elif args.scenario == "window":
        sdf = (
            sdf.tumbling_window(timedelta(seconds=WINDOW_SECONDS))
            .agg(count=Count(), sum=Sum("amount"))
            .final(closing_strategy="partition")
        )
    elif args.scenario != "passthrough":
        raise SystemExit(f"no Quix Streams version of {args.scenario}")
    sdf.to_topic(output)
    app.run()


if __name__ == "__main__":
    main()
