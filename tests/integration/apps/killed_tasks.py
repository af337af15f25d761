"""A task app for the kill -9 test: every execution of ``work`` appends one line
(pid, task id, key, start and end time) to the file TEST_TASK_LOG when it ends."""

from __future__ import annotations

import json
import os
import time

import millstream
from millstream import App

app = App(
    os.environ.get("TEST_APP_ID", "killed-tasks"),
    commit_interval=0.5,
    processing_guarantee=os.environ.get("TEST_GUARANTEE", "at_least_once"),  # type: ignore[arg-type]
)
_LOG = os.environ.get("TEST_TASK_LOG", "/dev/null")


@app.task(partitions=int(os.environ.get("TEST_PARTITIONS", "2")), concurrency=16)
def work(n: int) -> int:
    info = millstream.current_task()
    started = time.time()
    time.sleep(0.2)
    line = {"pid": os.getpid(), "id": info.id, "n": n, "start": started, "end": time.time()}
    # One write per line, appended: lines of concurrent tasks never interleave.
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)
    return n
