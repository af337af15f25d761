"""A task app for the asyncio client test: one async task and one sync task."""

from __future__ import annotations

import asyncio
import os

import millstream
from millstream import App

app = App(os.environ.get("TEST_APP_ID", "async-tasks"))


@app.task(partitions=2)
async def greet(name: str) -> dict[str, str]:
    await asyncio.sleep(0.01)
    return {"greeting": f"hello {name}", "id": millstream.current_task().id}


@app.task(partitions=2)
def shout(name: str) -> str:
    return name.upper()
