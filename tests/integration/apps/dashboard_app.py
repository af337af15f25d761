"""A stateless app with custom dashboard panels of all four kinds, for the browser test.

TEST_APP_ID, TEST_IN, TEST_OUT: names. TEST_SLOW_US: microseconds of busy work per record.
"""

import os
import time
from typing import Any

from millstream import App
from millstream.config import Settings
from millstream.dashboard import Panel

app = App(os.environ["TEST_APP_ID"], commit_interval=0.5, batch_size=200)
source = app.topic(os.environ["TEST_IN"], partitions=4)
output = app.topic(os.environ["TEST_OUT"], partitions=4)
_slow = int(os.environ.get("TEST_SLOW_US", "0")) / 1e6


def enrich(value: dict) -> dict:
    if _slow:
        time.sleep(_slow)
    return {**value, "usd": round(value["amount"] * 1.1, 2)}


app.stream(source).map(enrich).to(output)


TITLES = {
    "stats": "Order stats",
    "table": "Top customers",
    "bars": "Orders by size",
    "series": "Amount per second",
}


class Refreshes(Panel):
    """Counts its own snapshots, so the page shows a number that moves."""

    def __init__(self, kind: str) -> None:
        self.title = TITLES[kind]
        self.kind = kind
        self.started = False
        self.count = 0

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def snapshot(self) -> dict[str, Any]:
        self.count += 1
        if self.kind == "stats":
            return {"kind": "stats", "items": {"refreshes": self.count, "state": "started"}}
        if self.kind == "table":
            return {
                "kind": "table",
                "columns": ["customer", "orders"],
                "rows": [["c-7", 3], ["c-12", 1]],
            }
        if self.kind == "bars":
            return {"kind": "bars", "items": {"small": 12, "medium": 5, "large": 2}}
        now = time.time()
        return {"kind": "series", "points": [[now - 10 + i, (i * 7) % 5] for i in range(10)]}


def dashboard_panels(settings: Settings) -> list[Panel]:
    return [Refreshes(kind) for kind in ("stats", "table", "bars", "series")]
