"""A contender running as a subprocess: its log, its CPU time and peak RSS, and stopping it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

_TICKS = os.sysconf("SC_CLK_TCK")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ERROR = re.compile(r"^\w*(Error|Exception)\b|Error:")


def contender_env(root: Path, run_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a contender process: this one's, ``extra``, unbuffered output,
    and on ``PYTHONPATH`` only a directory holding a link to ``bench``: the repository
    root there would shadow the millstream under test with the working tree's."""
    path = run_dir / "path"
    link = path / "bench"
    if not link.exists():
        path.mkdir(parents=True, exist_ok=True)
        link.symlink_to(root / "bench")
    return {**os.environ, **extra, "PYTHONPATH": str(path), "PYTHONUNBUFFERED": "1"}


class ContenderProcess:
    """``python -m module args...`` in ``cwd``, stdout and stderr to ``log_path``.

    Use as a context manager: leaving it stops the process (SIGTERM, then SIGKILL
    after ``grace`` seconds) whatever happened.
    """

    def __init__(
        self,
        python: Path,
        module: str,
        args: list[str],
        *,
        cwd: Path,
        log_path: Path,
        env: dict[str, str],
        grace: float = 30.0,
    ) -> None:
        self.log_path = log_path
        self.grace = grace
        self._log = log_path.open("w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(python), "-m", module, *args],
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __enter__(self) -> ContenderProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def exited(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return self.proc.poll()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its reaped children so far."""
        return _cpu_seconds(Path(f"/proc/{self.proc.pid}/stat"))

    def session_cpu_seconds(self) -> float:
        """CPU time of every process in the contender's session (it starts one): the
        process itself and the children it still runs, such as a worker pool's."""
        return sum(_cpu_seconds(stat) for stat in self._session())

    def session_pss_mb(self) -> float:
        """Proportional set size summed over the session's processes, in MiB: pages
        shared by forked children count once in all, not once per process."""
        total = 0
        for stat in self._session():
            try:
                lines = (stat.parent / "smaps_rollup").read_text().splitlines()
            except OSError:
                continue
            total += sum(int(line.split()[1]) for line in lines if line.startswith("Pss:"))
        return total / 1024

    def _session(self) -> list[Path]:
        """``/proc/<pid>/stat`` of every live process whose session is this one's."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[3]) == self.proc.pid:
                found.append(stat)
        return found

    def peak_rss_mb(self) -> float:
        """The process's peak resident set size (VmHWM) so far, in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def failure(self) -> str:
        """A one-line reason the process ended: its exit code and the last error logged."""
        lines = [_ANSI.sub("", line).strip() for line in self.log_text().splitlines()]
        lines = [line for line in lines if line]
        errors = [line for line in lines if _ERROR.search(line)]
        last = (errors or lines or ["no output"])[-1][:160]
        return f"crashed (exit {self.exited}): {last}"

    def stop(self) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU time of process ``pid``, its reaped children included; 0 when it
    has gone."""
    return _cpu_seconds(Path(f"/proc/{pid}/stat"))


def _cpu_seconds(stat: Path) -> float:
    """User + system CPU time in ``/proc/<pid>/stat``, reaped children included; 0 for a
    process that has gone."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _TICKS
