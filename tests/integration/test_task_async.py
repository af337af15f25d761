"""The asyncio side of tasks: ``send_async`` returns once Kafka has the task,
``result_async`` waits for its result without blocking the event loop, and an async
task runs on the worker's event loop and knows its id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import Names, WorkerProcess, wait_for

from millstream import App
from millstream.errors import TaskTimeout

APP = "tests.integration.apps.async_tasks:app"


def test_an_asyncio_client_sends_tasks_and_awaits_their_results(
    names: Names, bootstrap_servers: str, tmp_path: Path
) -> None:
    app = App(names.app, bootstrap_servers=bootstrap_servers)

    @app.task(partitions=2)
    async def greet(name: str) -> dict[str, str]:  # runs on the worker only
        return {}

    @app.task(partitions=2)
    def shout(name: str) -> str:
        return name

    async def before_any_worker() -> None:
        handle = await greet.send_async("nobody")
        with pytest.raises(TaskTimeout):
            await handle.result_async(timeout=0.5)

    asyncio.run(before_any_worker())
    worker = WorkerProcess(APP, names.env(bootstrap_servers), tmp_path / "worker.log")
    try:
        wait_for(
            lambda: worker.running() and len(worker.owned(greet.topic)) == 2,
            60,
            "the worker to own the task partitions",
        )

        async def client() -> list[object]:
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.005)
                    ticks += 1

            ticker = asyncio.create_task(tick())
            handles = [await greet.send_async(f"n{i}") for i in range(50)]
            handles += [await shout.send_async(f"n{i}") for i in range(50)]
            results = await asyncio.gather(*(h.result_async(timeout=60) for h in handles))
            ticker.cancel()
            # The loop went on running while the client waited for Kafka and the worker.
            assert ticks > 0
            for handle, result in zip(handles[:50], results[:50], strict=True):
                assert isinstance(result, dict) and result["id"] == handle.id
            return list(results)

        results = asyncio.run(client())
        assert [r["greeting"] for r in results[:50]] == [f"hello n{i}" for i in range(50)]  # type: ignore[index]
        assert results[50:] == [f"N{i}" for i in range(50)]
        assert worker.stop() == 0
    finally:
        worker.kill()
