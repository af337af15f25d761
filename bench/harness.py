"""Running the contenders against one pre-filled input topic and measuring them.

For every contender: a fresh consumer group and output topic, a subprocess reading the
input from the earliest offset, progress sampled every ``SAMPLE`` seconds from the
outside (output record count, or committed offsets of its group), SIGTERM once all
input is processed. See docs/benchmarks.md for how each number is defined.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.kafka_io import Cluster, PacedLoad, latencies_ms, now_ms, prefill, prefill_distinct
from bench.lineup import Contender
from bench.peers import PeerUnavailable, interpreter
from bench.process import ContenderProcess, contender_env
from bench.results import Result, RunConfig

SAMPLE = 0.1
LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
#: Event time of the input spans this many ms per record: 1M records cover 100 s.
EVENT_MS_PER_RECORD = 0.1
_RESTORED = re.compile(r"restored (\d+) changelog records of (\d+) store partitions in ([\d.]+)s")


@dataclass
class Progress:
    """Samples of a count that grows to ``target`` while a contender works.

    ``end`` is the sample that showed all of it, or the last one when the run was cut
    short by the time limit (``partial``).
    """

    target: int
    started: float
    first: tuple[float, int] | None = None
    last: tuple[float, int] | None = None
    last_idle: float = 0.0
    done: bool = False
    cpu_at_first: float = 0.0

    def add(self, when: float, value: int) -> None:
        if value <= 0:
            self.last_idle = when
            return
        if self.first is None:
            self.first = (when, value)
        self.last = (when, value)
        self.done = value >= self.target

    @property
    def end(self) -> float:
        return self.last[0] if self.last else self.started

    @property
    def measured(self) -> float:
        """Seconds from the first sample that showed progress to now."""
        return time.monotonic() - self.first[0] if self.first else 0.0

    def rate(self) -> float | None:
        """Records/s from the first sample that showed progress to the last one (records
        done between them over the time between them). When one sample showed it all,
        the run was shorter than the sampling: the count over the time since the last
        sample that showed nothing."""
        if self.first is None or self.last is None:
            return None
        (t0, v0), (t1, v1) = self.first, self.last
        if t1 > t0 and v1 > v0:
            return (v1 - v0) / (t1 - t0)
        return v1 / max(t1 - max(self.last_idle, self.started), SAMPLE)


class Bench:
    """One benchmark run: its configuration, the cluster and the results so far."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.cluster = Cluster(config.bootstrap)
        self.input = f"{config.prefix}-in"
        self.passing = 0
        self.results: list[Result] = []

    # -- the shared input ---------------------------------------------------------

    def prefill(self) -> None:
        cfg = self.config
        self.cluster.create_topic(self.input, cfg.partitions)
        spread = int(cfg.records * EVENT_MS_PER_RECORD)
        done = prefill(cfg.bootstrap, self.input, cfg.records, cfg.keys, spread_ms=spread)
        self.passing = done.passing_filter
        print(
            f"prefilled {self.input}: {done.records:,} records, {cfg.keys:,} keys, "
            f"{cfg.partitions} partitions in {done.seconds:.1f}s",
            file=sys.stderr,
        )

    def cleanup(self) -> None:
        """Delete the run's topics and local state (its logs stay)."""
        self.cluster.delete_topics([t for t in self.cluster.topics() if self.config.prefix in t])
        shutil.rmtree(self.config.run_dir / "state", ignore_errors=True)

    # -- one contender --------------------------------------------------------------

    def run(self, scenario: str, contender: Contender) -> Result:
        result = Result.of(scenario, contender, self.config.records)
        try:
            python = interpreter(contender.family, self.config.root, self.config.millstream_ref)
        except PeerUnavailable as exc:
            result.status = f"not installed: {exc}"
        else:
            if scenario == "restore":
                self._restore(python, contender, result)
            else:
                self._bulk(python, scenario, contender, result)
                if result.ok and scenario in ("passthrough", "stateless"):
                    self._latency(python, scenario, contender, result)
        self.results.append(result)
        return result

    def repeat(self, scenario: str, contender: Contender, result: Result, round_: int) -> None:
        """Another bulk run of a contender that already ran (``round_`` >= 1): its rate
        joins ``result.runs``; the row's rate and CPU us/record become the medians."""
        python = interpreter(contender.family, self.config.root, self.config.millstream_ref)
        again = Result.of(scenario, contender, self.config.records)
        self._bulk(python, scenario, contender, again, suffix=f"-r{round_}")
        if not again.ok or again.rate is None or again.note:
            print(
                f"{scenario}: {contender.label}: repeat {round_}: {again.status}", file=sys.stderr
            )
            return
        if not result.runs and result.rate is not None:
            result.runs.append(result.rate)
            if result.cpu_us_per_record is not None:
                result.cpu_runs.append(result.cpu_us_per_record)
        result.runs.append(again.rate)
        if again.cpu_us_per_record is not None:
            result.cpu_runs.append(again.cpu_us_per_record)
        result.rate = statistics.median(result.runs)
        if result.cpu_runs:
            result.cpu_us_per_record = statistics.median(result.cpu_runs)

    def _start(
        self,
        python: Path,
        contender: Contender,
        scenario: str,
        tag: str,
        topics: tuple[str, str],
        group: str,
    ) -> ContenderProcess:
        state = self.config.run_dir / "state" / tag
        state.mkdir(parents=True, exist_ok=True)
        args = [
            f"--scenario={scenario}",
            f"--bootstrap={self.config.bootstrap}",
            f"--input={topics[0]}",
            f"--output={topics[1]}",
            f"--group={group}",
            f"--partitions={self.config.partitions}",
            f"--guarantee={contender.guarantee}",
            f"--store={contender.store}",
            f"--state-dir={state}",
        ]
        env = contender_env(self.config.root, self.config.run_dir)
        log = self.config.run_dir / f"{tag}.log"
        return ContenderProcess(
            python, contender.module, args, cwd=self.config.run_dir, log_path=log, env=env
        )

    def _watch(self, proc: ContenderProcess, progress: Progress, count: Callable[[], int]) -> str:
        """Sample ``count`` until it reaches the target, or until ``time_limit`` seconds
        after the first progress; "ok" or why it failed."""
        cfg = self.config
        while not progress.done:
            if proc.exited is not None:
                return proc.failure()
            now = time.monotonic()
            if progress.first is None and now - proc.started > cfg.startup_timeout:
                return f"no progress {cfg.startup_timeout:.0f}s after start"
            if progress.measured > cfg.time_limit:
                break
            progress.add(now, count())
            if progress.first is not None and not progress.cpu_at_first:
                progress.cpu_at_first = proc.cpu_seconds()
            time.sleep(SAMPLE)
        return "ok"

    def _measure(
        self, proc: ContenderProcess, progress: Progress, count: Callable[[], int], result: Result
    ) -> None:
        """Watch the contender and fill in its throughput, CPU and memory."""
        result.status = self._watch(proc, progress, count)
        if not result.ok or progress.first is None or progress.last is None:
            return
        result.rate = progress.rate()
        result.wall_s = progress.end - proc.started
        result.startup_s = progress.first[0] - proc.started
        result.cpu_s = proc.cpu_seconds()
        result.rss_mb = proc.peak_rss_mb()
        result.load = os.getloadavg()[0]
        done = progress.last[1] / progress.target
        result.processed = round(result.records * min(done, 1.0))
        between = (progress.last[1] - progress.first[1]) * result.records / progress.target
        if between > 0:
            steady = result.cpu_s - progress.cpu_at_first
            result.cpu_us_per_record = steady * 1e6 / between
        if not progress.done:
            result.note = (
                f"stopped after {self.config.time_limit:.0f} s of measurement at {done:.0%} "
                "of the input: rate, CPU and wall time cover that part"
            )

    def _bulk(
        self, python: Path, scenario: str, contender: Contender, result: Result, suffix: str = ""
    ) -> None:
        cfg = self.config
        tag = f"{scenario}-{contender.name}{suffix}"
        group, output = f"{cfg.prefix}-{tag}", f"{cfg.prefix}-{tag}-out"
        self.cluster.create_topic(output, cfg.partitions, LOG_APPEND_TIME)
        if scenario == "window":
            target = cfg.records

            def count() -> int:
                return sum(self.cluster.committed(group, self.input).values())
        else:
            target = self.passing if scenario == "stateless" else cfg.records

            def count() -> int:
                return sum(self.cluster.end_offsets(output).values())

        with self._start(python, contender, scenario, tag, (self.input, output), group) as proc:
            self._measure(proc, Progress(target, proc.started), count, result)

    def _latency(self, python: Path, scenario: str, contender: Contender, result: Result) -> None:
        """A second process on an empty topic, fed at a fixed rate once it is caught up."""
        cfg = self.config
        tag = f"{scenario}-{contender.name}-latency"
        group, source, output = (f"{cfg.prefix}-{tag}{s}" for s in ("", "-in", "-out"))
        self.cluster.create_topic(source, cfg.partitions)
        self.cluster.create_topic(output, cfg.partitions, LOG_APPEND_TIME)
        load = PacedLoad(cfg.bootstrap, source, cfg.keys)
        bulk_rate = result.rate or 1.0
        rate = cfg.latency_rate if bulk_rate >= 1.25 * cfg.latency_rate else int(bulk_rate / 2)

        def outputs() -> int:
            return sum(self.cluster.end_offsets(output).values())

        def caught_up() -> bool:
            return outputs() >= (load.passing if scenario == "stateless" else load.sent)

        def warm() -> bool:
            load.send(cfg.partitions)
            return outputs() > 0

        with self._start(python, contender, scenario, tag, (source, output), group) as proc:
            status = self._until(proc, warm, 120) or self._until(proc, caught_up, 60)
            if status is None:
                since = now_ms()
                load.run(rate, cfg.latency_seconds)
                backlog = rate * cfg.latency_seconds / bulk_rate
                status = self._until(proc, caught_up, 30 + 3 * backlog)
        if status is not None:
            result.status = f"latency phase {status}"
            return
        samples = sorted(latencies_ms(cfg.bootstrap, output, since))
        if samples:
            result.p50_ms = statistics.median(samples)
            result.p99_ms = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
            result.latency_rate = rate

    def _until(
        self, proc: ContenderProcess, condition: Callable[[], bool], timeout: float
    ) -> str | None:
        """Poll ``condition`` every 0.25 s: None once true, else what went wrong."""
        deadline = time.monotonic() + timeout
        while not condition():
            if proc.exited is not None:
                return proc.failure()
            if time.monotonic() > deadline:
                return f"timed out after {timeout:.0f}s"
            time.sleep(0.25)
        return None

    # -- restore ----------------------------------------------------------------------

    def prepare_restore(self) -> str | None:
        """Build a changelog of ``records`` distinct keys with a millstream table app.

        Returns None when it is ready, else why not.
        """
        cfg = self.config
        source, output = f"{cfg.prefix}-restore-in", f"{cfg.prefix}-restore-out"
        self.cluster.create_topic(source, cfg.partitions)
        self.cluster.create_topic(output, cfg.partitions)
        prefill_distinct(cfg.bootstrap, source, cfg.records)
        builder = Contender(
            "build", "millstream", "", "bench.contenders.millstream_app", store="rocksdb"
        )
        group = f"{cfg.prefix}-restore"
        python = interpreter("millstream", cfg.root, cfg.millstream_ref)
        with self._start(python, builder, "table", "restore-build", (source, output), group) as p:
            progress = Progress(cfg.records, p.started)
            status = self._watch(
                p, progress, lambda: sum(self.cluster.committed(group, source).values())
            )
            if status == "ok" and not progress.done:
                status = f"took over {self.config.time_limit:.0f}s"
        print(f"restore: built a {cfg.records:,}-key changelog: {status}", file=sys.stderr)
        return None if status == "ok" else f"building the changelog {status}"

    def _restore(self, python: Path, contender: Contender, result: Result) -> None:
        """A fresh worker (empty state directory) of the table app restores the changelog."""
        cfg = self.config
        group = f"{cfg.prefix}-restore"
        changelog = f"{group}-restore-changelog"
        partitions = sum(1 for n in self.cluster.end_offsets(changelog).values() if n > 0)
        topics = (f"{cfg.prefix}-restore-in", f"{cfg.prefix}-restore-out")
        tag = f"restore-{contender.name}"
        with self._start(python, contender, "table", tag, topics, group) as proc:
            progress = Progress(partitions, proc.started)
            result.status = self._watch(
                proc,
                progress,
                lambda: sum(int(k) for _, k, _ in _RESTORED.findall(proc.log_text())),
            )
            if result.ok and not progress.done:
                result.status = f"restore took over {self.config.time_limit:.0f}s"
            if not result.ok:
                return
            result.cpu_s = proc.cpu_seconds()
            result.rss_mb = proc.peak_rss_mb()
            result.load = os.getloadavg()[0]
            restored = [(int(n), float(s)) for n, _, s in _RESTORED.findall(proc.log_text())]
        records = sum(n for n, _ in restored)
        seconds = sum(s for _, s in restored)
        result.records = records
        result.rate = records / max(seconds, 1e-6)
        result.processed = records
        result.cpu_us_per_record = (
            result.cpu_s * 1e6 / records if result.cpu_s and records else None
        )
        result.wall_s = progress.end - proc.started
        result.startup_s = result.wall_s - seconds
