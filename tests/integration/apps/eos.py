"""The exactly-once test pipeline: a stateless step, a group_by and a tumbling-window count.

Configured by environment: TEST_APP_ID, TEST_IN, TEST_OUT (enriched records),
TEST_COUNTS (window counts), TEST_GUARANTEE (exactly_once | at_least_once),
TEST_PARTITIONS (default 6), TEST_REPLICATION (default: the cluster's default),
TEST_STORE (rocksdb | memory), TEST_SLOW_US (busy time per record, to stretch a run).
Timestamps come from the value's "ts"; a grace period longer than any test run
means no record is ever late, so the counts do not depend on how partitions
interleave in the repartition topic.
"""

import os
import time
from datetime import timedelta

from millstream import App
from millstream.processors import windows

partitions = int(os.environ.get("TEST_PARTITIONS", "6"))
replication = int(os.environ["TEST_REPLICATION"]) if "TEST_REPLICATION" in os.environ else None
app = App(
    os.environ["TEST_APP_ID"],
    processing_guarantee=os.environ.get("TEST_GUARANTEE", "exactly_once"),
    commit_interval=0.5,
    transaction_timeout=10,
    batch_size=2000,
)
source = app.topic(os.environ["TEST_IN"], partitions=partitions, replication=replication)
enriched = app.topic(os.environ["TEST_OUT"], partitions=partitions, replication=replication)
counts = app.topic(os.environ["TEST_COUNTS"], partitions=partitions, replication=replication)

_slow = int(os.environ.get("TEST_SLOW_US", "0")) / 1e6


def enrich(value: dict) -> dict:
    if _slow:
        time.sleep(_slow)
    return {**value, "cents": round(value["amount"] * 100)}


stream = app.stream(source, timestamp=lambda v: v["ts"])
stream.map(enrich).to(enriched)
(
    stream.group_by(lambda v: v["card"], name="by-card")
    .window(
        windows.Tumbling(timedelta(seconds=10), grace=timedelta(days=1)),
        name="card-counts",
        backend=os.environ.get("TEST_STORE", "rocksdb"),
    )
    .count()
    .to(counts)
)
