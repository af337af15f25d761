"""Four windowed aggregations as branches of one stream, for the window tests.

Records are ``{"ts": epoch ms, "amount": int}`` keyed by card, already partitioned
by key (``group_by_key``, no repartition). Each branch sends its ``.final()``
results to ``{TEST_OUT}-{kind}``: tumbling count, hopping sum, sliding count,
session sum.

As a worker process, configured by environment variables: TEST_APP_ID, TEST_IN,
TEST_OUT (prefix of the output topics), TEST_STORE (memory | rocksdb),
TEST_SLOW_US (microseconds of busy work per record, to make a run last).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any, Literal, cast

from millstream import App
from millstream.config import Settings
from millstream.processors import windows

StoreKind = Literal["memory", "rocksdb"]

PARTITIONS = 4
KINDS = ("tumbling", "hopping", "sliding", "session")

# Window parameters in milliseconds: the tests' oracle uses the same numbers.
TUMBLING_SIZE, TUMBLING_GRACE = 10_000, 2_000
HOPPING_SIZE, HOPPING_ADVANCE, HOPPING_GRACE = 10_000, 5_000, 2_000
SLIDING_SIZE, SLIDING_GRACE = 5_000, 2_000
SESSION_GAP, SESSION_GRACE = 2_000, 1_000


def _ms(value: int) -> timedelta:
    return timedelta(milliseconds=value)


def output_topics(prefix: str) -> dict[str, str]:
    """The output topic of each window kind."""
    return {kind: f"{prefix}-{kind}" for kind in KINDS}


def windowed_app(
    app_id: str,
    source: str,
    out_prefix: str,
    *,
    store: StoreKind = "memory",
    settings: Settings | None = None,
    slow_us: int = 0,
) -> App:
    """The app: one stream of ``source``, four windowed branches."""
    app = App(app_id, settings=settings, commit_interval=0.5, batch_size=2000)
    outputs = {
        kind: app.topic(name, partitions=PARTITIONS)
        for kind, name in output_topics(out_prefix).items()
    }
    stream = app.stream(app.topic(source, partitions=PARTITIONS), timestamp=lambda v: v["ts"])
    if slow_us:
        stream = stream.map(_busy(slow_us))
    grouped = stream.group_by_key()

    def amount(value: Any) -> int:
        return int(value["amount"])

    grouped.window(
        windows.Tumbling(_ms(TUMBLING_SIZE), grace=_ms(TUMBLING_GRACE)),
        name="tumbling",
        backend=store,
    ).count().to(outputs["tumbling"])
    grouped.window(
        windows.Hopping(_ms(HOPPING_SIZE), _ms(HOPPING_ADVANCE), grace=_ms(HOPPING_GRACE)),
        name="hopping",
        backend=store,
    ).sum(amount).to(outputs["hopping"])
    grouped.window(
        windows.Sliding(_ms(SLIDING_SIZE), grace=_ms(SLIDING_GRACE)),
        name="sliding",
        backend=store,
    ).count().to(outputs["sliding"])
    grouped.window(
        windows.Session(_ms(SESSION_GAP), grace=_ms(SESSION_GRACE)),
        name="session",
        backend=store,
    ).sum(amount).to(outputs["session"])
    return app


def _busy(slow_us: int) -> Any:
    seconds = slow_us / 1e6

    def work(value: Any) -> Any:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            pass
        return value

    return work


def __getattr__(name: str) -> App:
    # The CLI reads ``app`` from the environment; importing the module for its
    # constants and factory needs no environment.
    if name != "app":
        raise AttributeError(name)
    return windowed_app(
        os.environ["TEST_APP_ID"],
        os.environ["TEST_IN"],
        os.environ["TEST_OUT"],
        store=cast(StoreKind, os.environ.get("TEST_STORE", "memory")),
        slow_us=int(os.environ.get("TEST_SLOW_US", "0")),
    )
