"""What a worker is configured with, and what it counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from millstream.processors.latency import LatencyHistogram


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker processes: validated by the App before a worker exists."""

    commit_interval: float = 1.0
    exactly_once: bool = False
    transaction_timeout: float = 10.0
    #: How long running tasks may finish on SIGTERM or when their partition is revoked.
    shutdown_timeout: float = 30.0
    batch_size: int = 5000
    poll_timeout: float = 0.2
    group_protocol: str = "auto"
    consumer_config: dict[str, Any] = field(default_factory=dict)
    producer_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class WorkerStats:
    """Counters a worker keeps while it runs.

    Each is counted once per batch or event, never per record where a batch will do;
    the metrics server reads them when scraped (processors/metrics.py).
    """

    records_in: int = 0
    records_out: int = 0
    dead_letters: int = 0
    late_records: int = 0
    restored_records: int = 0
    rebalances: int = 0
    aborts: int = 0
    commits: int = 0
    #: Times a sink signalled backpressure and input was paused.
    sink_pauses: int = 0
    #: Partitions given to, taken from (with a commit) and lost by (without one) this worker.
    partitions_assigned: int = 0
    partitions_revoked: int = 0
    partitions_lost: int = 0
    #: records_in and records_out by topic.
    topic_records_in: dict[str, int] = field(default_factory=dict)
    topic_records_out: dict[str, int] = field(default_factory=dict)
    #: Seconds each consumed batch took to process, and each checkpoint that committed.
    processing_seconds: LatencyHistogram = field(default_factory=LatencyHistogram)
    commit_seconds: LatencyHistogram = field(default_factory=LatencyHistogram)


def group_protocol_config(protocol: str) -> dict[str, Any]:
    """Consumer properties for the KIP-848 ``consumer`` protocol or the ``classic`` one."""
    if protocol == "consumer":
        return {"group.protocol": "consumer"}
    return {
        "group.protocol": "classic",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 2000,
    }
