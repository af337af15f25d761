"""millstream: a no-op task, its worker, and the publishing client of the tasks scenario.

Only the public task API of docs/tasks.md: ``@app.task`` on a function that returns
its argument, ``app.run()`` for the worker, ``noop.send(i)`` and
``handle.result(timeout=...)`` for the client. Kafka comes from
MILLSTREAM_BOOTSTRAP_SERVERS.

``--mode=ordered`` (the default) uses the task's defaults: 8 partitions,
``concurrency=16`` per partition, sync functions on a thread pool. ``--mode=queue``
puts the task on a one-partition topic read by the app's share group, and
``--workers=N`` runs N worker processes (this one forwards SIGTERM to them).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from types import FrameType
from typing import Any

from bench.contenders import task_client
from millstream import App
from millstream.errors import TaskTimeout


def noop(i: int) -> int:
    return i


def build(app_id: str, mode: str = "ordered") -> tuple[App, Any]:
    """The app ``app_id`` and its ``noop`` task, in ``mode``."""
    if mode == "queue":
        app = App(app_id, task_mode="queue")
        return app, app.task(partitions=1)(noop)
    app = App(app_id)
    return app, app.task(noop)


def run_workers(args: Any) -> int:
    """``args.workers`` worker processes of one worker each; SIGTERM goes to all."""
    command = [
        sys.executable, "-m", "bench.contenders.millstream_tasks", "worker",
        f"--app={args.app}", f"--mode={args.mode}", "--workers=1",
    ]  # fmt: skip
    children = [subprocess.Popen(command) for _ in range(args.workers)]

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return next((code for code in codes if code != 0), 0)


def main(argv: list[str] | None = None) -> None:
    args = task_client.parse_args(__doc__ or "", argv)
    if args.command == "worker" and args.workers > 1:
        sys.exit(run_workers(args))
    app, noop = build(args.app, args.mode)
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
