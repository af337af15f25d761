"""The sinks scenario: records/s from one topic into PostgreSQL and into Parquet files.

One input topic is pre-filled with ``sink_records`` JSON records. Every contender (a
framework writing to one destination) runs as a subprocess that reads the whole topic
from the earliest offset with a fresh consumer group and writes it into a table or a
directory of its own; its progress is sampled every ``SAMPLE`` seconds from outside
as the offsets its group committed. Both frameworks flush their sinks before they
commit, so a committed offset means the records before it are in the destination.
When the group has committed the whole input the contender gets SIGTERM and the
destination is checked (``bench.destinations``): a destination that does not hold
every record (append, Parquet) or every key's last record (upsert) fails the row.
Runs go round the contenders ``repeat`` times; a row shows the median. A private
PostgreSQL server (``bench.postgres_server``) serves the whole scenario. Every wait is
bounded; see docs/benchmarks.md for how each number is defined.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.destinations import Check, Expected, check_parquet, check_table, drop_table
from bench.harness import EVENT_MS_PER_RECORD, SAMPLE, Progress
from bench.kafka_io import Cluster, prefill
from bench.lineup import Contender
from bench.peers import PeerUnavailable, interpreter
from bench.postgres_server import BenchPostgres, PostgresUnavailable
from bench.process import ContenderProcess, contender_env
from bench.results import Result, RunConfig

SCENARIO = "sinks"


@dataclass
class _Row:
    """One contender while the scenario runs: its interpreter and its runs' figures."""

    contender: Contender
    result: Result
    python: Path = Path()
    rates: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """Whether it runs again: nothing failed and no run was cut short."""
        return self.result.ok and not self.result.note

    @property
    def postgres(self) -> bool:
        return self.contender.sink.startswith("postgres")


@dataclass
class _Run:
    """What one run measured."""

    progress: Progress
    cpu_steady: float = 0.0
    server_steady: float = 0.0
    #: (seconds since the process started, records committed) at every change.
    steps: list[tuple[float, int]] = field(default_factory=list)

    def busy_rate(self) -> float | None:
        """Records/s from the first commit to the last one before the commit that covered
        the whole input: the final flush waits for the checkpoint after the input ran
        out, up to a commit interval of idling. None with fewer than three commits."""
        commits = [(t, v) for t, v in self.steps if v > 0]
        if self.progress.done:
            commits = commits[:-1]
        if len(commits) < 2:
            return None
        (t0, v0), (t1, v1) = commits[0], commits[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else None


class SinkBench:
    """Runs the sinks scenario into ``results``."""

    def __init__(self, config: RunConfig, repeat: int) -> None:
        self.config = config
        self.repeat = repeat
        self.cluster = Cluster(config.bootstrap)
        self.input = f"{config.prefix}-sinks-in"
        self.expected = Expected(config.sink_records, config.keys)
        self.results: list[Result] = []
        self.postgres: BenchPostgres | None = None

    def run(self, contenders: list[Contender]) -> list[Result]:
        """Measure ``contenders``; their rows (also appended to ``results``) have a status
        other than "ok" when the peer, PostgreSQL, a run or a destination check failed.
        The PostgreSQL server is stopped when this returns or raises."""
        rows = [self._row(c) for c in contenders]
        if any(row.live for row in rows):
            self._prefill()
        with contextlib.ExitStack() as stack:
            if any(row.live and row.postgres for row in rows):
                self._start_postgres(stack, rows)
            for round_ in range(self.repeat):
                for row in rows:
                    if row.live:
                        self._once(row, round_)
        for row in rows:
            self._summarize(row)
            self.results.append(row.result)
        return [row.result for row in rows]

    def _row(self, contender: Contender) -> _Row:
        row = _Row(contender, Result.of(SCENARIO, contender, self.config.sink_records))
        try:
            row.python = interpreter(contender.family, self.config.root, self.config.millstream_ref)
        except PeerUnavailable as exc:
            row.result.status = f"not installed: {exc}"
        return row

    def _prefill(self) -> None:
        cfg = self.config
        self.cluster.create_topic(self.input, cfg.partitions)
        spread = int(cfg.sink_records * EVENT_MS_PER_RECORD)
        done = prefill(cfg.bootstrap, self.input, cfg.sink_records, cfg.keys, spread_ms=spread)
        print(
            f"{SCENARIO}: prefilled {self.input}: {done.records:,} records, {cfg.keys:,} keys, "
            f"{cfg.partitions} partitions in {done.seconds:.1f}s",
            file=sys.stderr,
        )

    def _start_postgres(self, stack: contextlib.ExitStack, rows: list[_Row]) -> None:
        cfg = self.config
        base = cfg.root / ".local" / "bench" / "postgres" / cfg.run_dir.name
        try:
            self.postgres = stack.enter_context(BenchPostgres(base, cfg.run_dir / "postgres.log"))
        except PostgresUnavailable as exc:
            for row in rows:
                if row.postgres:
                    row.result.status = f"no PostgreSQL: {exc}"
            return
        print(f"{SCENARIO}: PostgreSQL on 127.0.0.1:{self.postgres.port}", file=sys.stderr)

    # -- one run ----------------------------------------------------------------------

    def _once(self, row: _Row, round_: int) -> None:
        """One run of ``row``: its figures join the row's, or the row fails."""
        cfg, contender = self.config, row.contender
        tag = f"{SCENARIO}-{contender.name}-r{round_}"
        # Quix's file sink takes no "-" in its directory: underscores, relative to cwd.
        place = f"{contender.name.replace('-', '_')}_r{round_}"
        directory = Path("state") / SCENARIO / place
        print(f"{SCENARIO}: {contender.label}: run {round_ + 1} ...", file=sys.stderr)
        group = f"{cfg.prefix}-{tag}"
        with self._start(row, tag, group, place, directory) as proc:
            run = _Run(Progress(self.expected.records, proc.started))
            status = self._watch(proc, group, run)
            if status == "ok":
                self._record(row, proc, run)
        (cfg.run_dir / f"{tag}-commits.json").write_text(json.dumps(run.steps))
        if status != "ok":
            row.result.status = status
            print(f"{SCENARIO}: {contender.label}: {status}", file=sys.stderr)
        elif not run.progress.done:
            row.result.note = (
                f"run {round_ + 1} stopped after {cfg.time_limit:.0f} s of measurement at "
                f"{run.progress.last[1] if run.progress.last else 0:,} of "
                f"{self.expected.records:,} records: its rate covers those"
            )
        else:
            self._conclude(row, place, cfg.run_dir / directory)

    def _conclude(self, row: _Row, table: str, directory: Path) -> None:
        """Check the destination of a run that wrote the whole input, then remove it."""
        check = self._check(row, table, directory)
        row.result.destination = check.text
        if not check.ok:
            row.result.status = f"destination check failed: {check.text}"
        self._clear(row, table, directory)
        rate = f"{row.rates[-1]:,.0f} records/s" if row.rates else ""
        print(f"{SCENARIO}: {row.contender.label}: {rate}; {check.text}", file=sys.stderr)

    def _start(
        self, row: _Row, tag: str, group: str, table: str, directory: Path
    ) -> ContenderProcess:
        cfg, contender = self.config, row.contender
        state = cfg.run_dir / "state" / tag
        state.mkdir(parents=True, exist_ok=True)
        args = [
            f"--sink={contender.sink}",
            f"--bootstrap={cfg.bootstrap}",
            f"--input={self.input}",
            f"--group={group}",
            f"--state-dir={state}",
            f"--directory={directory}",
            f"--table={table}",
        ]
        if self.postgres is not None:
            args.append(f"--port={self.postgres.port}")
        return ContenderProcess(
            row.python,
            contender.module,
            args,
            cwd=cfg.run_dir,
            log_path=cfg.run_dir / f"{tag}.log",
            env=contender_env(cfg.root, cfg.run_dir),
        )

    def _watch(self, proc: ContenderProcess, group: str, run: _Run) -> str:
        """Sample the group's committed offsets until they cover the input, or until
        ``time_limit`` s after the first progress; "ok" or why the run failed. The CPU
        times at the first progress are noted, for the steady-state figures."""
        cfg, progress = self.config, run.progress

        def committed() -> int:
            return sum(self.cluster.committed(group, self.input).values())

        while not progress.done:
            if proc.exited is not None:
                return proc.failure()
            now = time.monotonic()
            if progress.first is None and now - proc.started > cfg.startup_timeout:
                return f"no commit {cfg.startup_timeout:.0f}s after start"
            if progress.measured > cfg.time_limit:
                break
            value = committed()
            progress.add(now, value)
            if not run.steps or value != run.steps[-1][1]:
                run.steps.append((round(now - proc.started, 2), value))
            if progress.first is not None and not progress.cpu_at_first:
                progress.cpu_at_first = proc.cpu_seconds()
                run.server_steady = self._server_cpu()
            time.sleep(SAMPLE)
        run.cpu_steady = proc.cpu_seconds() - progress.cpu_at_first
        run.server_steady = self._server_cpu() - run.server_steady
        return "ok"

    def _record(self, row: _Row, proc: ContenderProcess, run: _Run) -> None:
        """The run's rate and CPU figures into ``row``; the process's totals into its
        result (the last run's), and the highest load of its runs."""
        progress, result = run.progress, row.result
        rate = progress.rate()
        if rate is None or progress.first is None or progress.last is None:
            return
        row.rates.append(rate)
        busy = run.busy_rate()
        if busy is not None:
            row.busy.append(busy)
        between = progress.last[1] - progress.first[1]
        if between > 0:
            row.cpu.append(run.cpu_steady * 1e6 / between)
            if self.postgres is not None and row.postgres:
                row.server_cpu.append(run.server_steady * 1e6 / between)
        result.processed = progress.last[1]
        result.wall_s = progress.end - proc.started
        result.startup_s = progress.first[0] - proc.started
        result.cpu_s = proc.cpu_seconds()
        result.rss_mb = proc.peak_rss_mb()
        result.load = max(result.load or 0.0, os.getloadavg()[0])

    def _check(self, row: _Row, table: str, directory: Path) -> Check:
        if row.contender.sink == "parquet":
            return check_parquet(directory, self.expected)
        assert self.postgres is not None
        upsert = row.contender.sink == "postgres-upsert"
        return check_table(self.postgres.dsn, table, upsert, self.expected)

    def _clear(self, row: _Row, table: str, directory: Path) -> None:
        """Remove what a checked run wrote."""
        if row.postgres and self.postgres is not None:
            drop_table(self.postgres.dsn, table)
        shutil.rmtree(directory, ignore_errors=True)

    def _summarize(self, row: _Row) -> None:
        """The row's medians over its runs."""
        result = row.result
        if not row.rates:
            return
        result.rate = statistics.median(row.rates)
        result.runs = row.rates if len(row.rates) > 1 else []
        result.busy_rate = _median(row.busy)
        result.cpu_us_per_record = _median(row.cpu)
        result.cpu_runs = row.cpu if len(row.cpu) > 1 else []
        result.server_cpu_us_per_record = _median(row.server_cpu)

    def _server_cpu(self) -> float:
        return self.postgres.cpu_seconds() if self.postgres is not None else 0.0


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
