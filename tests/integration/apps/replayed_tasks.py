"""A task app for the replay test: ``fragile`` fails while the file TEST_CAUSE exists,
and logs every attempt to TEST_TASK_LOG."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import millstream
from millstream import App

app = App(os.environ.get("TEST_APP_ID", "replayed-tasks"), commit_interval=0.5)


@app.task(partitions=1, retries=3, backoff=1.0)
def fragile(order: str) -> str:
    info = millstream.current_task()
    with open(os.environ["TEST_TASK_LOG"], "a") as log:
        log.write(json.dumps({"id": info.id, "attempt": info.attempt, "at": time.time()}) + "\n")
    if Path(os.environ["TEST_CAUSE"]).exists():
        raise ConnectionError(f"the payment service is down for {order}")
    return f"charged {order}"
