"""A FileSink test app, configured by environment variables so tests can run it as workers.

TEST_APP_ID, TEST_IN: names. TEST_FILES: the sink's directory. TEST_FORMAT: jsonl or
parquet. TEST_ROLL_EVERY: rows per file. TEST_SLOW_US: microseconds of work per record,
so that a test can kill a worker in the middle of its input.
"""

import os
import time

from millstream import App
from millstream.sinks import FileSink

app = App(os.environ["TEST_APP_ID"], commit_interval=0.5, batch_size=500)
source = app.topic(os.environ["TEST_IN"], partitions=3)
_slow = int(os.environ.get("TEST_SLOW_US", "0")) / 1e6


def work(value: dict) -> dict:
    if _slow:
        time.sleep(_slow)
    return value


app.stream(source).map(work).sink(
    FileSink(
        os.environ["TEST_FILES"],
        format=os.environ.get("TEST_FORMAT", "jsonl"),
        roll_every=int(os.environ.get("TEST_ROLL_EVERY", "100000")),
        metadata=("partition", "offset"),
    )
)
