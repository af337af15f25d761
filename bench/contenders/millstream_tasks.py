"""millstream: a no-op task, its worker, and the publishing client of the tasks scenario.

Only the public task API of docs/tasks.md: ``@app.task`` on a function that returns
its argument, ``app.run()`` for the worker (one process, the task's defaults:
8 partitions, ``concurrency=16`` per partition, sync functions on a thread pool),
``noop.send(i)`` and ``handle.result(timeout=...)`` for the client. Kafka comes from
MILLSTREAM_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from bench.contenders import task_client
from millstream import App
from millstream.errors import TaskTimeout


def build(app_id: str) -> tuple[App, Any]:
    """The app ``app_id`` and its ``noop`` task."""
    app = App(app_id)

    @app.task
    def noop(i: int) -> int:
        return i

    return app, noop


def main(argv: list[str] | None = None) -> None:
    args = task_client.parse_args(__doc__ or "", argv)
    app, noop = build(args.app)
    if args.command == "worker":
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
        )
        stats = app.run()
        print(f"millstream done: {stats}", file=sys.stderr)
        return

    def wait(handle: Any, timeout: float) -> Any:
        return handle.result(timeout=timeout)

    task_client.run(args, noop.send, wait, (TaskTimeout,))


if __name__ == "__main__":
    main(sys.argv[1:])
