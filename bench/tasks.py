"""The tasks scenario: a no-op task's throughput and round-trip latency, queue against queue.

Each contender gets a worker process (millstream on the benchmark's Kafka; Celery on a
fresh redis-server of its own), started and warmed up in turn, and then client
processes, one per phase (see ``bench.contenders.task_client``): ``throughput`` in
``--repeat`` rounds that go round the contenders, then ``latency``. Only one client runs
at a time; the other workers idle meanwhile. The worker's CPU time (its pool's processes
included) is read around each throughput run. Every wait is bounded; a failure becomes
the row's status and the run goes on. See docs/benchmarks.md for how each number is
defined.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.lineup import Contender
from bench.peers import PeerUnavailable, interpreter
from bench.process import ContenderProcess, contender_env
from bench.redis_server import RedisServer, RedisUnavailable
from bench.results import Result, RunConfig

SCENARIO = "tasks"
#: Seconds one round trip may take once the worker is up.
ROUND_TRIP_TIMEOUT = 10.0
#: Seconds a client process may take beyond its own limits (interpreter start, imports).
CLIENT_SLACK = 60.0


class PhaseFailed(Exception):
    """A worker or client process failed or took too long; the message says which."""


@dataclass
class _Queue:
    """One contender while the scenario runs: its worker and the figures so far."""

    contender: Contender
    result: Result
    python: Path = Path()
    redis: str = ""
    worker: ContenderProcess | None = None
    rates: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """Whether it takes part in the next throughput round: its worker runs, nothing
        failed, and no run was cut short by the time limit."""
        return self.worker is not None and self.result.ok and not self.result.note


class TaskBench:
    """Runs the tasks scenario into ``results``: every contender's worker is started and
    warmed up in turn, then the throughput runs go round the contenders ``repeat`` times
    (a noisy spell of the shared machine falls on all of them rather than on one), then
    each contender's latency phase. A contender's client runs while the other workers
    idle."""

    def __init__(self, config: RunConfig, repeat: int) -> None:
        self.config = config
        self.repeat = repeat
        self.results: list[Result] = []
        #: The run's Redis servers: one directory per port, holding its log.
        self.redis_dir = config.root / ".local" / "bench" / "redis" / config.run_dir.name

    def run(self, contenders: list[Contender]) -> list[Result]:
        """Measure ``contenders``; their rows (also appended to ``results``) have a status
        other than "ok" when the peer, Redis, the worker or a client failed. Workers and
        Redis servers are stopped when this returns or raises."""
        with contextlib.ExitStack() as stack:
            queues = [self._start(stack, c) for c in contenders]
            for round_ in range(self.repeat):
                for queue in queues:
                    if queue.live:
                        self._attempt(queue, self._throughput, round_)
            for queue in queues:
                if queue.worker is not None and queue.result.ok:
                    self._attempt(queue, self._latency)
        for queue in queues:
            self._summarize(queue)
            self.results.append(queue.result)
        return [q.result for q in queues]

    def _start(self, stack: contextlib.ExitStack, contender: Contender) -> _Queue:
        """Its Redis (Celery) and worker, entered into ``stack``, warmed up."""
        queue = _Queue(contender, Result.of(SCENARIO, contender, self.config.tasks))
        print(f"{SCENARIO}: {contender.label}: starting", file=sys.stderr)
        try:
            queue.python = interpreter(
                contender.family, self.config.root, self.config.millstream_ref
            )
            if contender.family == "celery":
                redis = stack.enter_context(RedisServer(self.redis_dir))
                queue.redis = redis.url().rsplit("/", 1)[0]
            queue.worker = stack.enter_context(self._worker(queue.python, contender, queue.redis))
            self._warm(queue)
            queue.result.startup_s = time.monotonic() - queue.worker.started
        except PeerUnavailable as exc:
            queue.result.status = f"not installed: {exc}"
        except RedisUnavailable as exc:
            queue.result.status = f"no Redis: {exc}"
        except PhaseFailed as exc:
            queue.result.status = str(exc)
        return queue

    def _attempt(self, queue: _Queue, step: Callable[..., None], *args: int) -> None:
        try:
            step(queue, *args)
        except PhaseFailed as exc:
            queue.result.status = str(exc)
            print(f"{SCENARIO}: {queue.contender.label}: {exc}", file=sys.stderr)

    def _throughput(self, queue: _Queue, round_: int) -> None:
        cfg, worker = self.config, queue.worker
        assert worker is not None
        before = worker.session_cpu_seconds()
        figures = self._phase(queue, "throughput", cfg.tasks, ROUND_TRIP_TIMEOUT)
        used = worker.session_cpu_seconds() - before
        done, seconds = int(figures["completed"]), float(figures["seconds"])
        if done < cfg.tasks:
            queue.result.note = (
                f"throughput run {round_ + 1} stopped after {cfg.time_limit:.0f} s at "
                f"{done:,} of {cfg.tasks:,} results: its rate covers those"
            )
        queue.rates.append(done / seconds)
        queue.cpu.append(used * 1e6 / max(done, 1))
        queue.client_cpu.append(float(figures["cpu_s"]) * 1e6 / max(done, 1))
        queue.result.rss_mb = worker.session_pss_mb()
        label = queue.contender.label
        print(f"{SCENARIO}: {label}: {done / seconds:,.0f} tasks/s", file=sys.stderr)

    def _latency(self, queue: _Queue) -> None:
        figures = self._phase(queue, "latency", self.config.round_trips, ROUND_TRIP_TIMEOUT)
        samples = sorted(float(s) for s in figures["samples_ms"])
        result = queue.result
        result.p50_ms = statistics.median(samples)
        result.p99_ms = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        result.mean_ms = statistics.fmean(samples)
        result.processed = len(samples)
        label = queue.contender.label
        print(
            f"{SCENARIO}: {label}: round trips p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms",
            file=sys.stderr,
        )

    def _summarize(self, queue: _Queue) -> None:
        """The row's medians over the throughput runs, and the worker's totals."""
        result, worker = queue.result, queue.worker
        if not result.ok or not queue.rates or worker is None:
            return
        result.rate = statistics.median(queue.rates)
        result.runs = queue.rates if len(queue.rates) > 1 else []
        result.cpu_us_per_record = statistics.median(queue.cpu)
        result.cpu_runs = queue.cpu if len(queue.cpu) > 1 else []
        result.client_cpu_us_per_task = statistics.median(queue.client_cpu)
        result.cpu_s = worker.session_cpu_seconds()
        result.wall_s = time.monotonic() - worker.started
        result.load = os.getloadavg()[0]

    def _warm(self, queue: _Queue) -> None:
        """Round trips until one succeeds, for up to ``startup_timeout`` s after the worker
        started: a client that fails while the worker is still creating its topics is
        started again (each failure is printed)."""
        assert queue.worker is not None
        deadline = queue.worker.started + self.config.startup_timeout
        while True:
            left = deadline - time.monotonic()
            try:
                self._phase(queue, "warm", 1, max(left, 1.0))
                return
            except PhaseFailed as exc:
                if queue.worker.exited is not None or time.monotonic() + 1.0 > deadline:
                    raise
                print(f"{SCENARIO}: {queue.contender.label}: {exc}; again", file=sys.stderr)
                time.sleep(1.0)

    def _worker(self, python: Path, contender: Contender, redis: str) -> ContenderProcess:
        """The contender's worker process, started; leaving its ``with`` stops it."""
        cfg = self.config
        state = cfg.run_dir / "state" / f"{SCENARIO}-{contender.name}"
        state.mkdir(parents=True, exist_ok=True)
        args = ["worker", f"--app={self._app_id(contender)}"]
        if contender.family == "millstream":
            args += [f"--mode={contender.task_mode}", f"--workers={contender.workers}"]
        if contender.family == "celery":
            args += [
                f"--redis={redis}",
                f"--pool={contender.pool}",
                f"--concurrency={contender.concurrency}",
            ]
        return ContenderProcess(
            python,
            contender.module,
            args,
            cwd=cfg.run_dir,
            log_path=cfg.run_dir / f"{SCENARIO}-{contender.name}-worker.log",
            env=self._env(state),
        )

    def _phase(self, queue: _Queue, phase: str, count: int, timeout: float) -> dict[str, Any]:
        """Run one client phase to its end and return its figures.

        Raises:
            PhaseFailed: the client crashed or overran its limits, or the worker exited.
        """
        cfg, contender, worker = self.config, queue.contender, queue.worker
        assert worker is not None
        tag = f"{SCENARIO}-{contender.name}-{phase}"
        out = cfg.run_dir / f"{tag}.json"
        out.unlink(missing_ok=True)
        args = [
            "client",
            f"--app={self._app_id(contender)}",
            f"--phase={phase}",
            f"--count={count}",
            f"--timeout={timeout}",
            f"--time-limit={cfg.time_limit}",
            f"--out={out}",
        ]
        if queue.redis:
            args.append(f"--redis={queue.redis}")
        if contender.family == "millstream":
            args.append(f"--mode={contender.task_mode}")
        if phase == "throughput":
            limit = cfg.time_limit + ROUND_TRIP_TIMEOUT
        elif phase == "latency":
            limit = count * ROUND_TRIP_TIMEOUT
        else:
            limit = timeout
        limit += CLIENT_SLACK
        env = self._env(cfg.run_dir / "state" / tag)
        log = cfg.run_dir / f"{tag}.log"
        with ContenderProcess(
            queue.python, contender.module, args, cwd=cfg.run_dir, log_path=log, env=env
        ) as client:
            while client.exited is None:
                if worker.exited is not None:
                    raise PhaseFailed(f"{phase}: the worker {worker.failure()}")
                if time.monotonic() - client.started > limit:
                    raise PhaseFailed(f"{phase}: the client was still running after {limit:.0f}s")
                time.sleep(0.05)
            if client.exited != 0 or not out.exists():
                raise PhaseFailed(f"{phase}: the client {client.failure()}")
        figures: dict[str, Any] = json.loads(out.read_text())
        return figures

    def _app_id(self, contender: Contender) -> str:
        return f"{self.config.prefix}-{contender.name}"

    def _env(self, state: Path) -> dict[str, str]:
        state.mkdir(parents=True, exist_ok=True)
        return contender_env(self.config.root, self.config.run_dir, MILLSTREAM_LOCAL_DIR=str(state))
