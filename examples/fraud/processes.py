"""The live demo's child processes: detector workers and the dashboard.

Each worker is ``millstream worker examples.fraud.detectors:app`` in a process of
its own (so one can be killed alone), serving ``/readyz`` on a port of its own; its
output goes to a log file beside the run's other files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

APP = "examples.fraud.detectors:app"


class ChildProcess:
    """A child process with its output in ``log``."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """``kill -9``: no goodbye to the group, no last checkpoint."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no log: {exc})"


class WorkerProcess(ChildProcess):
    """One detector worker, with its metrics server on a free port."""

    def __init__(self, index: int, env: dict[str, str], log_dir: Path, port: int) -> None:
        self.port = port
        env = {**env, "MILLSTREAM_METRICS_PORT": str(self.port), "MILLSTREAM_WORKER_INDEX": "0"}
        command = [sys.executable, "-m", "millstream", "worker", APP]
        super().__init__(f"worker-{index}", command, env, log_dir / f"worker-{index}.log")

    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200: it owns its partitions and restored them."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def counters(self) -> dict[str, float]:
        """The worker's ``millstream_*_total`` counters from ``/metrics``; {} when it
        does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except (urllib.error.URLError, OSError):
            return {}
        found = {}
        for line in text.splitlines():
            name, _, rest = line.partition("{")
            if name.startswith("millstream_") and name.endswith("_total"):
                found[name[len("millstream_") : -len("_total")]] = float(rest.rsplit(" ", 1)[-1])
        return found


def dashboard_available() -> bool:
    """Whether this millstream has the ``dashboard`` command."""
    done = subprocess.run(
        [sys.executable, "-m", "millstream", "dashboard", "--help"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    return done.returncode == 0


def start_dashboard(
    port: int, env: dict[str, str], log_dir: Path, worker_ports: list[int]
) -> ChildProcess:
    """``millstream dashboard`` on ``port``, reading the workers' metrics on ``worker_ports``."""
    command = [sys.executable, "-m", "millstream", "dashboard", APP, "--port", str(port)]
    for worker_port in worker_ports:
        command += ["--metrics", f"http://127.0.0.1:{worker_port}/metrics"]
    return ChildProcess("dashboard", command, env, log_dir / "dashboard.log")


def wait_until(condition: object, timeout: float, what: str) -> None:
    """Poll ``condition()`` every 0.2 s until it is true.

    Raises:
        TimeoutError: it was not within ``timeout`` seconds; the message says ``what``.
    """
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(0.2)
