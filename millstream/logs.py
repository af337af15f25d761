"""Log output of millstream commands: readable text (the default) or one JSON object a line.

Every record carries the app id and the worker it comes from, and, while a worker
processes a partition's records (user code included), that topic and partition. They
come from context variables the worker sets, not from the message text, so a log
shipper reads them as fields::

    {"time": "2026-12-01T06:40:00.123Z", "level": "INFO", "logger": "millstream.worker",
     "message": "assigned orders[0]", "app_id": "fraud", "worker_id": "fraud-4242",
     "worker_index": 0, "pid": 4242, "topic": "orders", "partition": 0}

A call may also name them itself: ``log.info(..., extra={"topic": t, "partition": p})``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar, Token
from typing import Literal

import orjson

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "LogFormat",
    "configure_logging",
    "log_app",
    "log_partition",
    "reset_partition",
    "set_partition",
]

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s"

#: The app a thread's worker runs (a worker sets it on its own thread).
_app_id: ContextVar[str | None] = ContextVar("millstream_app_id", default=None)
#: The partition whose records this thread processes right now, as (topic, partition).
_partition: ContextVar[tuple[str, int] | None] = ContextVar("millstream_partition", default=None)

#: Attributes every LogRecord has: anything else was passed with ``extra``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
#: Fields the JSON formatter writes itself, in this order.
_OWN = ("app_id", "worker_id", "worker_index", "pid", "topic", "partition")


@contextlib.contextmanager
def log_app(app_id: str) -> Iterator[None]:
    """Within the block, this thread's log records (those of code it calls included)
    are app ``app_id``'s."""
    token = _app_id.set(app_id)
    try:
        yield
    finally:
        _app_id.reset(token)


@contextlib.contextmanager
def log_partition(topic: str, partition: int) -> Iterator[None]:
    """Within the block, this thread's log records name ``topic`` and ``partition``."""
    token = _partition.set((topic, partition))
    try:
        yield
    finally:
        _partition.reset(token)


def set_partition(topic: str, partition: int) -> Token[tuple[str, int] | None]:
    """The hot-path form of :func:`log_partition`: returns a token for :func:`reset_partition`."""
    return _partition.set((topic, partition))


def reset_partition(token: Token[tuple[str, int] | None]) -> None:
    """Undo the :func:`set_partition` that returned ``token``."""
    _partition.reset(token)


class ContextFilter(logging.Filter):
    """Adds ``app_id``, ``worker_id``, ``worker_index``, ``pid`` and, where one applies,
    ``topic`` and ``partition`` to every record that passes (values a call gave with
    ``extra`` win). Never drops a record."""

    def __init__(self, app_id: str | None = None, worker_index: int | None = None) -> None:
        super().__init__()
        self._app_id = app_id
        if worker_index is None:
            worker_index = int(os.environ.get("MILLSTREAM_WORKER_INDEX", "0") or 0)
        self._index = worker_index

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        app_id = fields.get("app_id") or _app_id.get() or self._app_id
        fields["app_id"] = app_id
        fields.setdefault("worker_index", self._index)
        fields.setdefault("pid", record.process)
        # The worker's client id in the group, as `millstream status` and /metrics show it.
        fields.setdefault("worker_id", f"{app_id}-{record.process}" if app_id else None)
        if "partition" not in fields:
            current = _partition.get()
            if current is not None:
                fields["topic"], fields["partition"] = current
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (UTC, ISO 8601), level, logger,
    message, the :class:`ContextFilter` fields that have values, any other ``extra``
    fields, and ``exception`` with the traceback text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        millis = int(record.msecs)
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{millis:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for name in _OWN:
            value = fields.get(name)
            if value is not None:
                entry[name] = value
        for name, value in fields.items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(
    level: str, log_format: LogFormat = "text", app_id: str | None = None
) -> None:
    """Send log records at ``level`` and above to stderr as ``log_format``.

    Replaces the root logger's handlers, so calling it twice does not print twice.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter(app_id))
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
