"""The exactly-once test pipeline: a stateless step, a group_by and a tumbling-window count.

Configured by environment: TEST_APP_ID, TEST_IN, TEST_OUT (enriched records),
TEST_COUNTS (window counts), TEST_GUARANTEE (exactly_once | at_least_once),
TEST_PARTITIONS (default 6), TEST_REPLICATION (default: the cluster's default),
TEST_STORE (rocksdb | memory), TEST_SLOW_US (busy time per record, to stretch a run).
For investigations: TEST_CONSUMER_DEBUG (librdkafka debug contexts of the worker's
consumer, e.g. ``cgrp,fetch``, logged at DEBUG) and TEST_CONSUMER_STATS (an interval in
ms: each assigned partition's fetch state, leader, offsets and queue, logged from the
client's statistics).
Timestamps come from the value's "ts"; a grace period longer than any test run
means no record is ever late, so the counts do not depend on how partitions
interleave in the repartition topic.
"""

import json
import logging
import os
import time
from datetime import timedelta
from typing import Any

from millstream import App
from millstream.processors import windows


def _log_partition_stats(raw: str) -> None:
    log = logging.getLogger("eos.stats")
    for topic, stats in json.loads(raw).get("topics", {}).items():
        for partition, p in stats.get("partitions", {}).items():
            if p.get("desired"):
                log.info(
                    "%s[%s] fetch state %s, leader %s (epoch %s), next %s, committed %s, "
                    "low %s, high %s, queued %s",
                    topic,
                    partition,
                    p.get("fetch_state"),
                    p.get("leader"),
                    p.get("leader_epoch"),
                    p.get("next_offset"),
                    p.get("committed_offset"),
                    p.get("lo_offset"),
                    p.get("hi_offset"),
                    p.get("fetchq_cnt"),
                )


consumer_config: dict[str, Any] = {}
if debug := os.environ.get("TEST_CONSUMER_DEBUG"):
    consumer_config["debug"] = debug
    logging.getLogger("millstream.kafka").setLevel(logging.DEBUG)
if interval := os.environ.get("TEST_CONSUMER_STATS"):
    consumer_config["statistics.interval.ms"] = int(interval)
    consumer_config["stats_cb"] = _log_partition_stats

partitions = int(os.environ.get("TEST_PARTITIONS", "6"))
replication = int(os.environ["TEST_REPLICATION"]) if "TEST_REPLICATION" in os.environ else None
app = App(
    os.environ["TEST_APP_ID"],
    processing_guarantee=os.environ.get("TEST_GUARANTEE", "exactly_once"),
    commit_interval=0.5,
    transaction_timeout=10,
    batch_size=2000,
    consumer_config=consumer_config,
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
