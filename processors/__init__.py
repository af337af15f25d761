"""Processing: the stream DSL, windows, state, the worker runtime, checkpoints, dead letters."""

from millstream.processors import windows
from millstream.processors.grouping import GroupedStream, WindowedStream, WindowResults
from millstream.processors.stream import Stream
from millstream.processors.tables import GlobalTable
from millstream.processors.topology import Topology
from millstream.processors.worker import Worker
from millstream.processors.worker_config import WorkerConfig, WorkerStats

__all__ = [
    "GlobalTable",
    "GroupedStream",
    "Stream",
    "Topology",
    "WindowResults",
    "WindowedStream",
    "Worker",
    "WorkerConfig",
    "WorkerStats",
    "windows",
]
