"""A sink that prints records, one line each: for demos, debugging and pipes."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

import orjson

from millstream.sinks.base import Sink, SinkRecord


class StdoutSink(Sink):
    """Prints each record as a JSON line ``{"key": ..., "value": ...}`` (or the value alone).

    Durable means written to the stream: ``flush`` flushes it.
    """

    def __init__(self, *, value_only: bool = False, stream: TextIO | None = None) -> None:
        self._value_only = value_only
        self._stream = stream

    def write(self, records: Sequence[SinkRecord]) -> None:
        out = self._stream or sys.stdout
        if self._value_only:
            lines = [orjson.dumps(r.value, default=str) for r in records]
        else:
            lines = [orjson.dumps({"key": r.key, "value": r.value}, default=str) for r in records]
        out.write(b"\n".join(lines).decode() + "\n" if lines else "")

    def flush(self) -> None:
        (self._stream or sys.stdout).flush()
