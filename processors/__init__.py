"""Processing: the stream DSL, the worker runtime, checkpoints and dead letters."""

from millstream.processors.stream import Stream
from millstream.processors.topology import Topology
from millstream.processors.worker import Worker, WorkerConfig, WorkerStats

__all__ = ["Stream", "Topology", "Worker", "WorkerConfig", "WorkerStats"]
