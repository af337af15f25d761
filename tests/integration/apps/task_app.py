"""The task app of tests/integration/test_tasks.py: one task per behaviour under test.

Every execution appends one JSON line to an execution log (``log_path``), written
with a single ``write`` to a file opened for appending, so lines of tasks that run
side by side never interleave. A line holds the task name, the task id, its attempt
(``current_task().attempt``: attempts made before this one), the pid, ``time.time()``
when it was written, and the task's own fields (``tag``, ``phase``; the ``ordered_*``
tasks write one line as they end, with ``key``, ``seq`` and their ``start`` and ``end``).

As a worker process, configured by environment variables: TEST_APP_ID, TEST_TASK_LOG
(the execution log), TEST_SLEEP_MS (how long ``ordered_*`` sleep, default 2),
TEST_SHUTDOWN_TIMEOUT (seconds, default 30).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import millstream
from millstream import App
from millstream.config import Settings

#: The retry policy of ``always_fails`` and ``not_retried``.
RETRIES, BACKOFF = 3, 1.0
#: How long ``nap`` sleeps, in seconds.
NAP_SECONDS = 2.0
#: Partitions of the task topics whose order the tests check.
ORDERED_PARTITIONS = 1


class ExecutionLog:
    """Appends one JSON line per task execution to a file (nothing when ``path`` is None)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else str(path)

    def write(self, **fields: Any) -> None:
        if self.path is None:
            return
        info = millstream.current_task()
        line = {
            "task": info.name,
            "id": info.id,
            "attempt": info.attempt,
            "pid": os.getpid(),
            "time": time.time(),
            **fields,
        }
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)


def read_log(path: Path) -> list[dict[str, Any]]:
    """The lines of an execution log, in the order they were written ([] before any)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def task_app(
    app_id: str,
    *,
    log_path: str | Path | None = None,
    settings: Settings | None = None,
    sleep_ms: float = 2.0,
    shutdown_timeout: float = 30.0,
) -> App:
    """The app: the same declarations in the test process (which sends) and in the
    worker processes (which run and log)."""
    app = App(app_id, settings=settings, commit_interval=0.5, shutdown_timeout=shutdown_timeout)
    log = ExecutionLog(log_path)
    pause = sleep_ms / 1000.0

    @app.task(retries=0)
    def add(a: int, b: int, *, scale: int = 1) -> int:
        log.write()
        return (a + b) * scale

    @app.task(retries=0)
    async def whoami(tag: str) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        log.write(tag=tag)
        return {"id": millstream.current_task().id, "tag": tag}

    @app.task(retries=0)
    def explode(message: str) -> None:
        log.write()
        raise ValueError(message)

    @app.task(retries=RETRIES, backoff=BACKOFF)
    def always_fails(tag: str) -> None:
        log.write(tag=tag)
        raise RuntimeError(f"{tag} failed on attempt {millstream.current_task().attempt + 1}")

    @app.task(retries=RETRIES, backoff=BACKOFF, retry_on=(ConnectionError,))
    def not_retried(tag: str) -> None:
        log.write(tag=tag)
        raise ValueError(f"{tag} is not worth retrying")

    @app.task(partitions=ORDERED_PARTITIONS, concurrency=16)
    def ordered_parallel(key: str, seq: int) -> int:
        started = time.time()
        time.sleep(pause)
        log.write(key=key, seq=seq, start=started, end=time.time())
        return seq

    @app.task(partitions=ORDERED_PARTITIONS, concurrency=1)
    def ordered_serial(key: str, seq: int) -> int:
        started = time.time()
        time.sleep(pause)
        log.write(key=key, seq=seq, start=started, end=time.time())
        return seq

    @app.task(retries=0)
    def record(tag: str) -> dict[str, Any]:
        log.write(tag=tag)
        return {"tag": tag, "pid": os.getpid()}

    @app.task(retries=0, concurrency=16)
    def nap(tag: str) -> str:
        log.write(tag=tag, phase="start")
        time.sleep(NAP_SECONDS)
        log.write(tag=tag, phase="end")
        return tag

    return app


def __getattr__(name: str) -> App:
    # The CLI reads ``app`` from the environment; the tests import the factory.
    if name != "app":
        raise AttributeError(name)
    return task_app(
        os.environ["TEST_APP_ID"],
        log_path=os.environ.get("TEST_TASK_LOG"),
        sleep_ms=float(os.environ.get("TEST_SLEEP_MS", "2")),
        shutdown_timeout=float(os.environ.get("TEST_SHUTDOWN_TIMEOUT", "30")),
    )
