"""The tasks scenario: a no-op task's throughput and round-trip latency, one queue at a time.

For each contender: a worker process (millstream on the benchmark's Kafka; Celery on a
fresh redis-server of its own), then client processes, one per phase (see
``bench.contenders.task_client``): ``warm`` until the worker answers, ``throughput``
``--repeat`` times, then ``latency``. The worker's CPU time (its pool's processes
included) is read around each throughput run; the worker is stopped before the next
contender starts. Every wait is bounded; a failure becomes the row's status and the
run goes on. See docs/benchmarks.md for how each number is defined.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
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


class TaskBench:
    """Runs the tasks scenario's contenders one after another into ``results``."""

    def __init__(self, config: RunConfig, repeat: int) -> None:
        self.config = config
        self.repeat = repeat
        self.results: list[Result] = []

    def run(self, contender: Contender) -> Result:
        """Measure ``contender``; the returned row (also appended to ``results``) has a
        status other than "ok" when its peer, Redis, the worker or a client failed."""
        result = Result.of(SCENARIO, contender, self.config.tasks)
        try:
            python = interpreter(contender.family, self.config.root, self.config.millstream_ref)
            with contextlib.ExitStack() as stack:
                redis = ""
                if contender.family == "celery":
                    base = self.config.run_dir / "redis"
                    redis = stack.enter_context(RedisServer(base)).url().rsplit("/", 1)[0]
                worker = stack.enter_context(self._worker(python, contender, redis))
                self._measure(python, contender, redis, worker, result)
        except PeerUnavailable as exc:
            result.status = f"not installed: {exc}"
        except RedisUnavailable as exc:
            result.status = f"no Redis: {exc}"
        except PhaseFailed as exc:
            result.status = str(exc)
        self.results.append(result)
        return result

    def _measure(
        self,
        python: Path,
        contender: Contender,
        redis: str,
        worker: ContenderProcess,
        result: Result,
    ) -> None:
        cfg = self.config
        self._phase(python, contender, redis, worker, "warm", 1, cfg.startup_timeout)
        result.startup_s = time.monotonic() - worker.started
        rates, cpu, client_cpu = [], [], []
        for round_ in range(self.repeat):
            before = worker.session_cpu_seconds()
            figures = self._phase(
                python, contender, redis, worker, "throughput", cfg.tasks, ROUND_TRIP_TIMEOUT
            )
            used = worker.session_cpu_seconds() - before
            done, seconds = int(figures["completed"]), float(figures["seconds"])
            if done < cfg.tasks:
                result.note = (
                    f"throughput run {round_ + 1} stopped after {cfg.time_limit:.0f} s at "
                    f"{done:,} of {cfg.tasks:,} results: its rate covers those"
                )
            rates.append(done / seconds)
            cpu.append(used * 1e6 / max(done, 1))
            client_cpu.append(float(figures["cpu_s"]) * 1e6 / max(done, 1))
            print(f"{SCENARIO}: {contender.label}: {done / seconds:,.0f} tasks/s", file=sys.stderr)
            if done < cfg.tasks:
                break
        result.rss_mb = worker.session_pss_mb()
        result.rate = statistics.median(rates)
        result.runs = rates if len(rates) > 1 else []
        result.cpu_us_per_record = statistics.median(cpu)
        result.cpu_runs = cpu if len(cpu) > 1 else []
        result.client_cpu_us_per_task = statistics.median(client_cpu)
        figures = self._phase(
            python, contender, redis, worker, "latency", cfg.round_trips, ROUND_TRIP_TIMEOUT
        )
        samples = sorted(float(s) for s in figures["samples_ms"])
        result.p50_ms = statistics.median(samples)
        result.p99_ms = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        result.mean_ms = statistics.fmean(samples)
        result.processed = len(samples)
        result.cpu_s = worker.session_cpu_seconds()
        result.wall_s = time.monotonic() - worker.started
        result.load = os.getloadavg()[0]

    def _worker(self, python: Path, contender: Contender, redis: str) -> ContenderProcess:
        """The contender's worker process, started; leaving its ``with`` stops it."""
        cfg = self.config
        state = cfg.run_dir / "state" / f"{SCENARIO}-{contender.name}"
        state.mkdir(parents=True, exist_ok=True)
        args = ["worker", f"--app={self._app_id(contender)}"]
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

    def _phase(
        self,
        python: Path,
        contender: Contender,
        redis: str,
        worker: ContenderProcess,
        phase: str,
        count: int,
        timeout: float,
    ) -> dict[str, Any]:
        """Run one client phase to its end and return its figures.

        Raises:
            PhaseFailed: the client crashed or overran its limits, or the worker exited.
        """
        cfg = self.config
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
        if redis:
            args.append(f"--redis={redis}")
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
            python, contender.module, args, cwd=cfg.run_dir, log_path=log, env=env
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
