"""A queue-mode task app for tests/integration/test_task_queue_mode.py.

Every execution appends lines to the file TEST_TASK_LOG: ``{"event": "start", ...}``
when a task starts and ``{"event": "end", ...}`` when it returns (pid, task id,
``n``, time), so the test can see which worker ran what, when, and how often.
"""

from __future__ import annotations

import json
import os
import time

import millstream
from millstream import App

app = App(os.environ.get("TEST_APP_ID", "queue-tasks"), task_mode="queue")
_LOG = os.environ.get("TEST_TASK_LOG", "/dev/null")
_SECONDS = float(os.environ.get("TEST_TASK_SECONDS", "0.5"))
_CONCURRENCY = int(os.environ.get("TEST_CONCURRENCY", "8"))
# One topic for both tasks: the share group's assignor spreads the members over the
# partitions it has, so two one-partition topics would each get half the workers.
TOPIC = f"{app.app_id}-queue"


def _note(event: str, n: int) -> None:
    info = millstream.current_task()
    line = {"event": event, "pid": os.getpid(), "id": info.id, "n": n, "at": time.time()}
    # One write per line, appended: lines of concurrent tasks never interleave.
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


@app.task(topic=TOPIC, partitions=1, concurrency=_CONCURRENCY)
def nap(n: int) -> int:
    """Sleeps TEST_TASK_SECONDS and returns ``n``."""
    _note("start", n)
    time.sleep(_SECONDS)
    _note("end", n)
    return n


@app.task(topic=TOPIC, partitions=1, retries=2, backoff=0.2)
def doomed(n: int) -> int:
    """Fails every time."""
    _note("start", n)
    raise RuntimeError(f"doomed {n}")
