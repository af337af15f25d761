"""Quix Streams 3.x: a topic into PostgreSQL or Parquet files with its sinks (sinks scenario).

``app.dataframe(source).sink(sink)`` with, by ``--sink``:

- ``postgres-append``: ``PostgreSQLSink(..., table_name=table)``: one row per record
  (plus Quix's ``__key`` and ``timestamp`` columns), no primary key;
- ``postgres-upsert``: the same with ``primary_key_columns=key_field,
  upsert_on_primary_key=True``: ``INSERT ... ON CONFLICT DO UPDATE``, the last record
  of a key in a batch winning;
- ``parquet``: ``LocalFileSink(directory=..., format="parquet")`` (Quix's ``FileSink``
  is the abstract base of its local, S3 and Azure file sinks): one file per source
  partition and checkpoint, named after its first offset.

Every other option is the default (the table and its columns created and updated from
the records, snappy compression). Quix's batching sinks write everything a partition
collected at each checkpoint, before the commit; the checkpoint is every second
(Quix's default is 5 s), as for millstream.
"""

from __future__ import annotations

from argparse import Namespace

from quixstreams import Application
from quixstreams.sinks import BatchingSink
from quixstreams.sinks.community.file.local import LocalFileSink
from quixstreams.sinks.community.postgresql import PostgreSQLSink

from bench.contenders.common import COMMIT_INTERVAL
from bench.contenders.sink_args import parse_args


def make_sink(args: Namespace) -> BatchingSink:
    """The sink of ``args.sink``, with Quix's defaults otherwise."""
    if args.sink == "parquet":
        return LocalFileSink(directory=args.directory, format="parquet")
    upsert = args.sink == "postgres-upsert"
    return PostgreSQLSink(
        host=args.host,
        port=args.port,
        dbname=args.dbname,
        user=args.user,
        password="",
        table_name=args.table,
        primary_key_columns=args.key_field if upsert else (),
        upsert_on_primary_key=upsert,
    )


def main() -> None:
    args = parse_args(__doc__ or "")
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=COMMIT_INTERVAL,
        processing_guarantee="at-least-once",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(args.input, key_deserializer="bytes", value_deserializer="json")
    app.dataframe(topic=source).sink(make_sink(args))
    app.run()


if __name__ == "__main__":
    main()
