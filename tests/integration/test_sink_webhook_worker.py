"""200,000 records through a worker to a webhook that answers 503 for 30 seconds on
the way: the worker pauses and resumes by itself, and the receiver, keeping each
record once by its topic, partition and offset (as docs/sinks.md tells receivers
to), ends with every record of the input and nothing else."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from support import Names, ThreadedWorker, produce_json, wait_for

from millstream import App
from millstream.config import Settings
from millstream.sinks import WebhookSink
from millstream.sinks.webhook import IDEMPOTENCY_HEADER

RECORDS = 200_000
#: How long the receiver answers 503, in seconds.
OUTAGE = 30


class Receiver:
    """Keeps each record once by (partition, offset); answers 503 while ``down``."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.refused = 0
        self.keys: set[str] = set()
        self._taken: dict[tuple[int, int], Any] = {}
        self._lock = threading.Lock()

    def answer(self, key: str, body: bytes) -> int:
        with self._lock:
            if self.down.is_set():
                self.refused += 1
                return 503
            self.keys.add(key)
            for item in orjson.loads(body):
                self._taken.setdefault((item["partition"], item["offset"]), item["value"])
            return 200

    def positions(self) -> dict[tuple[int, int], Any]:
        with self._lock:
            return dict(self._taken)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.answer(self.headers.get(IDEMPOTENCY_HEADER, ""), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def input_partitions() -> int:
    return 3


def test_a_worker_rides_out_a_webhook_answering_503_for_30_seconds(
    names: Names,
    bootstrap_servers: str,
    settings: Settings,
    receiver: tuple[Receiver, str],
) -> None:
    state, url = receiver
    app = App(names.app, bootstrap_servers=bootstrap_servers, commit_interval=0.5)
    app.stream(names.source).sink(WebhookSink(url, retry_for=2.0))
    half = RECORDS // 2
    produce_json(settings, names.source, ((f"k{i % 50}", {"n": i}) for i in range(half)))
    worker = ThreadedWorker(app)
    try:
        wait_for(
            lambda: worker.running() and len(state.positions()) >= half,
            60,
            "the first half to arrive",
        )
        state.down.set()
        down_since = time.monotonic()
        produce_json(
            settings, names.source, ((f"k{i % 50}", {"n": i}) for i in range(half, RECORDS))
        )
        wait_for(
            lambda: (
                worker.running()
                and worker.worker.stats.sink_pauses >= 2
                and time.monotonic() - down_since >= OUTAGE
            ),
            OUTAGE + 30,
            f"the worker to live through {OUTAGE} s of 503s",
        )
        state.down.clear()
        wait_for(
            lambda: worker.running() and len(state.positions()) >= RECORDS,
            120,
            "every record after the outage",
            observed=lambda: f"{len(state.positions())} arrived",
        )
        stats = worker.stop()
    finally:
        if worker.thread.is_alive():
            worker.worker.stop()
    values = Counter(value["n"] for value in state.positions().values())
    assert len(values) == RECORDS and set(values) == set(range(RECORDS))
    assert max(values.values()) == 1, values.most_common(3)
    assert stats.sink_pauses >= 2 and state.refused > 0
