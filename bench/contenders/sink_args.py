"""The command line of the sinks scenario's contenders, the same for millstream and Quix.

A contender reads ``--input`` from the earliest offset with its own ``--group`` and
writes every record into one destination (``--sink``): the PostgreSQL table ``--table``
of the server at ``--host``/``--port``, appended to or upserted by the value's
``--key-field``, or Parquet files under ``--directory`` (relative to the working
directory: Quix's file sink accepts no ``-`` in a path). It commits every
``COMMIT_INTERVAL`` seconds and runs until SIGTERM.

Standard library only: this module is imported inside the peers' virtualenvs.
"""

from __future__ import annotations

import argparse

#: The destinations a contender can write to (``bench.lineup.SINK_DESTINATIONS``).
DESTINATIONS = ("postgres-append", "postgres-upsert", "parquet")


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sink", choices=DESTINATIONS, required=True)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--input", required=True, help="input topic (pre-filled)")
    parser.add_argument("--group", required=True, help="consumer group / application id")
    parser.add_argument("--state-dir", required=True, help="a fresh directory for local state")
    parser.add_argument("--host", default="127.0.0.1", help="PostgreSQL host")
    parser.add_argument("--port", type=int, default=5432, help="PostgreSQL port")
    parser.add_argument("--user", default="postgres", help="PostgreSQL user (trust auth)")
    parser.add_argument("--dbname", default="postgres", help="PostgreSQL database")
    parser.add_argument("--table", default="", help="PostgreSQL table")
    parser.add_argument("--key-field", default="key", help="the upsert key: a value field")
    parser.add_argument("--directory", default="", help="Parquet files go under it")
    return parser.parse_args(argv)
