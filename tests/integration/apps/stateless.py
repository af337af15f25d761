"""A stateless test app, configured by environment variables so tests can run it as workers.

TEST_APP_ID, TEST_IN, TEST_OUT: names. TEST_SLOW_US: microseconds of busy work per record.
"""

import os
import time

from millstream import App

app = App(os.environ["TEST_APP_ID"], commit_interval=0.5, batch_size=500)
source = app.topic(os.environ["TEST_IN"], partitions=6)
output = app.topic(os.environ["TEST_OUT"], partitions=6)
_slow = int(os.environ.get("TEST_SLOW_US", "0")) / 1e6


def enrich(value: dict) -> dict:
    if _slow:
        time.sleep(_slow)
    return {**value, "usd": round(value["amount"] * 1.1, 2)}


app.stream(source).filter(lambda v: v["amount"] > 0).map(enrich).to(output)
