"""Apps with periodic tasks for tests/integration/test_periodic.py. Every execution of a
periodic task appends one line (pid, task name, task id, the period it fired for and
the time it ran) to the file TEST_PERIODIC_LOG.

``every_app`` fires ``beat`` every 2 s, with the guarantee TEST_GUARANTEE.
``catch_up_app`` fires ``keep`` and ``skip`` every 8 s with a misfire grace of 1 s
(one catches up missed periods, the other does not) and ``tick`` by a per-second
cron expression in Berlin time (every even second, with the default grace).
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta

import millstream
from millstream import App

APP_ID = os.environ.get("TEST_APP_ID", "periodic")
_LOG = os.environ.get("TEST_PERIODIC_LOG", "/dev/null")
CATCH_UP_EVERY = 8.0


def _record() -> None:
    info = millstream.current_task()
    period = datetime.fromisoformat(info.id.partition("@")[2]).timestamp()
    line = {"pid": os.getpid(), "task": info.name, "id": info.id, "period": period}
    line["ran"] = time.time()
    # One write per line, appended: lines of concurrent tasks never interleave.
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


every_app = App(
    APP_ID,
    commit_interval=0.2,
    processing_guarantee=os.environ.get("TEST_GUARANTEE", "at_least_once"),  # type: ignore[arg-type]
)


@every_app.periodic(every=timedelta(seconds=2))
def beat() -> None:
    _record()


catch_up_app = App(APP_ID, commit_interval=0.2)


@catch_up_app.periodic(every=CATCH_UP_EVERY, misfire_grace=1)
def keep() -> None:
    _record()


@catch_up_app.periodic(every=CATCH_UP_EVERY, misfire_grace=1, catch_up=False)
def skip() -> None:
    _record()


@catch_up_app.periodic(cron="*/2 * * * * *", timezone="Europe/Berlin")
def tick() -> None:
    _record()
