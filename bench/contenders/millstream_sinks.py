"""millstream: a topic into PostgreSQL or Parquet files with its own sinks (sinks scenario).

``app.stream(source).sink(sink)`` with, by ``--sink``:

- ``postgres-append``: ``PostgresSink(dsn, table)``: one row per record, the source
  position in ``_topic``/``_partition``/``_offset`` (unique together), so a replay is
  skipped;
- ``postgres-upsert``: ``PostgresSink(dsn, table, key=[key_field])``: one row per key,
  the last record of a key winning;
- ``parquet``: ``FileSink(directory, format="parquet")``: files per source partition,
  published by an atomic rename at each flush.

Every other option is the default: the table is created at the first flush with
inferred column types, at-least-once, a flush at every checkpoint (1 s) before the
commit, and ``PostgresSink`` flushes on its own at 50,000 buffered records.
"""

from __future__ import annotations

import logging
import os
import sys

from bench.contenders.common import COMMIT_INTERVAL
from bench.contenders.sink_args import parse_args
from millstream import App
from millstream.sinks import FileSink, PostgresSink, Sink


def make_sink(destination: str, dsn: str, table: str, key_field: str, directory: str) -> Sink:
    if destination == "postgres-append":
        return PostgresSink(dsn, table)
    if destination == "postgres-upsert":
        return PostgresSink(dsn, table, key=[key_field])
    return FileSink(directory, format="parquet")


def main() -> None:
    args = parse_args(__doc__ or "")
    os.environ["MILLSTREAM_BOOTSTRAP_SERVERS"] = args.bootstrap
    os.environ["MILLSTREAM_LOCAL_DIR"] = args.state_dir
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    dsn = (
        f"host={args.host} port={args.port} user={args.user} dbname={args.dbname} "
        "connect_timeout=10"
    )
    sink = make_sink(args.sink, dsn, args.table, args.key_field, args.directory)
    app = App(args.group, commit_interval=COMMIT_INTERVAL)
    app.stream(app.topic(args.input)).sink(sink)
    stats = app.run()
    print(f"millstream done: {stats}", file=sys.stderr)


if __name__ == "__main__":
    main()
