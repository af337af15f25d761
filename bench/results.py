"""What a benchmark run is given (``RunConfig``) and what it finds (``Result``, one row of
the table); both are saved to the run's ``results.json`` and read back by ``--report``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.lineup import Contender


@dataclass
class Result:
    """One row of the table. Numbers are None when not measured (or not meaningful)."""

    scenario: str
    contender: str
    label: str
    family: str
    guarantee: str
    store: str
    records: int
    rate: float | None = None
    wall_s: float | None = None
    startup_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    latency_rate: int | None = None
    rss_mb: float | None = None
    cpu_s: float | None = None
    cpu_us_per_record: float | None = None
    processed: int | None = None
    load: float | None = None
    status: str = "ok"
    note: str = ""
    #: records/s of every bulk run when the contender ran more than once; ``rate`` and
    #: ``cpu_us_per_record`` are then the medians.
    runs: list[float] = field(default_factory=list)
    cpu_runs: list[float] = field(default_factory=list)
    #: The tasks scenario: mean round trip, and the publishing client's CPU per task.
    mean_ms: float | None = None
    client_cpu_us_per_task: float | None = None
    #: The sinks scenario: records/s between the first commit and the last one before the
    #: input ran out (the final flush, which waits for the checkpoint, left out); PostgreSQL's
    #: CPU per record; what the destination held.
    busy_rate: float | None = None
    server_cpu_us_per_record: float | None = None
    destination: str = ""

    @classmethod
    def of(cls, scenario: str, contender: Contender, records: int, status: str = "ok") -> Result:
        """An empty row for ``contender`` in ``scenario``."""
        c = contender
        return cls(
            scenario, c.name, c.label, c.family, c.guarantee, c.store, records, status=status
        )

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class RunConfig:
    root: Path
    bootstrap: str
    records: int
    partitions: int
    keys: int
    latency_rate: int
    latency_seconds: float
    time_limit: float
    startup_timeout: float
    run_dir: Path
    prefix: str
    millstream_ref: str | None = None
    #: The tasks scenario: tasks per throughput run, sequential round trips, and the
    #: Celery worker pools to run (``pool:concurrency``).
    tasks: int = 20_000
    round_trips: int = 500
    celery_pools: tuple[str, ...] = ("prefork:2",)
    #: The sinks scenario: records in its input topic.
    sink_records: int = 500_000
