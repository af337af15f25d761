"""Sinks: where pipeline results leave millstream. See :mod:`millstream.sinks.base`."""

from millstream.sinks.base import Sink, SinkContext, SinkRecord
from millstream.sinks.files import FileSink
from millstream.sinks.kafka import KafkaSink
from millstream.sinks.postgres import PostgresSink
from millstream.sinks.stdout import StdoutSink
from millstream.sinks.webhook import WebhookSink

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
