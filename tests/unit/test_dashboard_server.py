"""The dashboard's web server (uvicorn on a loopback port), on a service that needs no
cluster."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from millstream.dashboard.server import bind, make_server
from millstream.errors import ConfigurationError


class CountingService:
    """Stands in for DashboardService: counts its refreshes and its start and stop."""

    def __init__(self) -> None:
        self.refreshes = 0
        self.events: list[str] = []

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> None:
        self.events.append("stop")

    def refresh(self) -> dict[str, Any]:
        self.refreshes += 1
        return {"app": "shop", "refreshes": self.refreshes}


@pytest.fixture
def served() -> Iterator[tuple[str, CountingService]]:
    service = CountingService()
    server = make_server(service, interval=0.2)  # type: ignore[arg-type]
    sock = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", service
    server.should_exit = True
    thread.join(10)
    sock.close()
    assert not thread.is_alive(), "the server did not stop within 10 s"
    assert service.events == ["start", "stop"]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_the_page_and_its_files_are_served(served: tuple[str, CountingService]) -> None:
    url, _ = served
    assert "/static/dashboard.js" in get(url + "/")
    assert "EventSource" in get(url + "/static/dashboard.js")
    assert "--bg" in get(url + "/static/dashboard.css")
    assert get(url + "/healthz") == "ok\n"


def test_snapshots_stream_as_server_sent_events(served: tuple[str, CountingService]) -> None:
    url, _ = served
    seen: list[int] = []
    with urllib.request.urlopen(url + "/events", timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        while len(seen) < 3:
            line = stream.readline()
            assert line, "the stream ended"
            if line.startswith(b"data: "):
                seen.append(orjson.loads(line[6:])["refreshes"])
    assert seen == sorted(set(seen)), f"snapshots repeated or out of order: {seen}"
    assert orjson.loads(get(url + "/api/snapshot"))["refreshes"] >= seen[-1]


def test_a_port_in_use_fails_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match="port"):
            bind("127.0.0.1", port)
