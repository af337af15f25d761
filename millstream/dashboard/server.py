"""The dashboard's web server: one static page and a stream of snapshots (server-sent events).

A background task refreshes the :class:`DashboardService` every ``interval`` seconds
(in a thread: the reads block) and every open ``/events`` stream receives each new
snapshot as one ``data:`` line of JSON. Routes:

- ``/``: the page (``static/index.html``; its script and style under ``/static``)
- ``/events``: ``text/event-stream`` of snapshots, the latest one first
- ``/api/snapshot``: the latest snapshot as JSON (for scripts and curl)
- ``/healthz``: ``ok``
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from millstream.dashboard.service import DashboardService
from millstream.errors import ConfigurationError

log = logging.getLogger("millstream.dashboard")

#: Seconds between two comment lines on an idle stream, so proxies keep it open.
KEEPALIVE = 15.0


class SnapshotFeed:
    """The latest snapshot, and a way to wait for the next one."""

    def __init__(self) -> None:
        self.latest: bytes | None = None
        self.version = 0
        self._changed = asyncio.Condition()

    async def publish(self, snapshot: dict[str, Any]) -> None:
        self.latest = orjson.dumps(snapshot)
        self.version += 1
        async with self._changed:
            self._changed.notify_all()

    async def wait_newer(self, version: int, timeout: float) -> bool:
        """Wait until a snapshot newer than ``version`` is in; False after ``timeout``."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.version > version), timeout
                )
            except TimeoutError:
                return False
        return True


async def _refresh_forever(service: DashboardService, feed: SnapshotFeed, interval: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await feed.publish(await asyncio.to_thread(service.refresh))
        except Exception:
            log.exception("refreshing the dashboard failed")
        await asyncio.sleep(max(interval - (loop.time() - started), 0.05))


def create_app(service: DashboardService, interval: float = 1.0) -> Starlette:
    """The ASGI app serving ``service``'s page, refreshed every ``interval`` seconds."""
    feed = SnapshotFeed()
    static = resources.files("millstream.dashboard") / "static"

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(service.start)
        task = asyncio.create_task(_refresh_forever(service, feed, interval))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.to_thread(service.stop)

    async def index(_: Request) -> Response:
        return FileResponse(str(static / "index.html"), media_type="text/html")

    async def events(_: Request) -> Response:
        return StreamingResponse(
            _event_stream(feed),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def snapshot(_: Request) -> Response:
        if feed.latest is None:
            return PlainTextResponse("no snapshot yet\n", status_code=503)
        return Response(feed.latest, media_type="application/json")

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/events", events),
            Route("/api/snapshot", snapshot),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=str(static)), name="static"),
        ],
        lifespan=lifespan,
    )


async def _event_stream(feed: SnapshotFeed) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    version = 0
    while True:
        if feed.version > version and feed.latest is not None:
            version = feed.version
            yield b"data: " + feed.latest + b"\n\n"
        elif not await feed.wait_newer(version, KEEPALIVE):
            yield b": keepalive\n\n"


class _Server(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM or SIGINT ends it with a clean return
    (exit status 0 once the panels are stopped) instead of being raised again."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread may set signal handlers
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def make_server(service: DashboardService, interval: float) -> uvicorn.Server:
    """A uvicorn server of ``service``'s page; ``run(sockets=[...])`` serves until
    SIGINT/SIGTERM (in the main thread) or until its ``should_exit`` is set."""
    config = uvicorn.Config(
        create_app(service, interval),
        log_level="warning",
        # Event streams never end by themselves: do not wait long for them on shutdown.
        timeout_graceful_shutdown=1,
    )
    return _Server(config)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: any free port).

    Raises:
        ConfigurationError: the address cannot be bound (setting ``port``).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigurationError("host", f"cannot listen on {host!r}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigurationError("port", f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


def serve(service: DashboardService, sock: socket.socket, interval: float) -> None:
    """Serve the dashboard on ``sock`` (from :func:`bind`) until SIGINT/SIGTERM, then
    stop the custom panels. Blocks."""
    with sock:
        make_server(service, interval).run(sockets=[sock])
