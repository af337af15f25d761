"""Sinks: where pipeline results leave millstream. See :mod:`millstream.sinks.base`.

The sinks with optional dependencies (PostgreSQL, files, webhooks) are imported when
first named, so a worker that does not use them never loads psycopg, pyarrow or httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from millstream.sinks.base import Sink, SinkContext, SinkRecord
from millstream.sinks.kafka import KafkaSink
from millstream.sinks.stdout import StdoutSink

if TYPE_CHECKING:
    from millstream.sinks.files import FileSink
    from millstream.sinks.postgres import PostgresSink
    from millstream.sinks.webhook import WebhookSink

_LAZY = {
    "FileSink": "millstream.sinks.files",
    "PostgresSink": "millstream.sinks.postgres",
    "WebhookSink": "millstream.sinks.webhook",
}

__all__ = [
    "FileSink",
    "KafkaSink",
    "PostgresSink",
    "Sink",
    "SinkContext",
    "SinkRecord",
    "StdoutSink",
    "WebhookSink",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
