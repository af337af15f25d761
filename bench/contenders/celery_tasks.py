"""Celery 5: a no-op task, its worker, and the publishing client of the tasks scenario.

``worker``: ``app.worker_main`` with ``--pool`` and ``--concurrency`` from the command
line, log level WARNING (at INFO Celery logs two lines per task), Celery's defaults
otherwise (prefetch multiplier 4, acks on receipt). ``client``: ``noop.delay(i)`` and
``AsyncResult.get(timeout=...)``. Redis is the broker (database 0) and the result
backend (database 1).

Runs in its own virtualenv (``.local/bench/celery``): imports only Celery and the
standard library besides ``bench.contenders.task_client``.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery  # type: ignore[import-not-found, unused-ignore]
from celery.exceptions import TimeoutError as CeleryTimeout  # type: ignore[import-not-found, unused-ignore]

from bench.contenders import task_client


def build(name: str, redis: str) -> tuple[Any, Any]:
    """The Celery app on ``redis`` (``redis://host:port``) and its ``noop`` task."""
    app = Celery(name, broker=f"{redis}/0", backend=f"{redis}/1")
    app.conf.broker_connection_retry_on_startup = True

    @app.task(name="noop")  # type: ignore[misc, untyped-decorator, unused-ignore]
    def noop(i: int) -> int:
        return i

    return app, noop


def main(argv: list[str] | None = None) -> None:
    args = task_client.parse_args(__doc__ or "", argv)
    app, noop = build(args.app, args.redis)
    if args.command == "worker":
        app.worker_main(
            [
                "worker",
                f"--pool={args.pool}",
                f"--concurrency={args.concurrency}",
                "--loglevel=WARNING",
                f"--hostname={args.app}@%h",
            ]
        )
        return

    def wait(result: Any, timeout: float) -> Any:
        return result.get(timeout=timeout)

    task_client.run(args, noop.delay, wait, (CeleryTimeout,))


if __name__ == "__main__":
    main(sys.argv[1:])
