"""WebhookSink (sinks/webhook.py) against a real HTTP server on 127.0.0.1, scripted to
answer 200, 503, 4xx or too late: batches arrive whole, keyed and signed; a receiver
that is down is retried, then backpressure, and once it is back every record
arrives once (the receiver drops keys it has taken, as docs/sinks.md tells it to);
a refused record goes to the dead letters and the rest is delivered."""

from __future__ import annotations

import hashlib
import hmac
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from millstream.config import load_settings
from millstream.errors import ConfigurationError, SinkBackpressure
from millstream.sinks import SinkContext, SinkRecord, WebhookSink
from millstream.sinks.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER

SECRET = "s3cret-for-tests"
TOPIC = "payments"


@dataclass
class Answer:
    """What the receiver does with one request: its status, whether it keeps the batch
    (a 2xx does), and how long it waits before it answers."""

    status: int = 200
    delay: float = 0.0
    body: str = "ok"


@dataclass(frozen=True)
class Request:
    key: str
    batch: list[dict[str, Any]]
    signed: bool
    content_type: str
    tenant: str | None


@dataclass
class Receiver:
    """What a webhook receiver saw. ``taken`` holds the batches it kept, by key: a key
    it has taken before is answered 200 and dropped, as the docs tell receivers to do."""

    script: Callable[[list[dict[str, Any]]], Answer] = lambda batch: Answer()
    requests: list[Request] = field(default_factory=list)
    taken: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: Message, body: bytes) -> Answer:
        key, batch = headers.get(IDEMPOTENCY_HEADER, ""), orjson.loads(body)
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(headers.get(SIGNATURE_HEADER, ""), expected)
        request = Request(key, batch, signed, headers["Content-Type"], headers.get("X-Tenant"))
        with self.lock:
            self.requests.append(request)
            if key in self.taken:
                return Answer()
            answer = self.script(batch)
            if 200 <= answer.status < 300:
                self.taken[key] = batch
        return answer

    def delivered(self) -> list[dict[str, Any]]:
        with self.lock:
            return [item for batch in self.taken.values() for item in batch]


class QuietServer(ThreadingHTTPServer):
    """Answers each request on a thread of its own; a client that gave up on a late
    answer (a timeout the test scripted) is no error to print."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = state.answer(self.headers, body)
            time.sleep(answer.delay)  # the scripted answer comes late (a timeout)
            payload = answer.body.encode()
            self.send_response(answer.status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closing() -> Iterator[Callable[[WebhookSink], WebhookSink]]:
    """Closes the sinks a test makes (their HTTP connections) when it ends."""
    made: list[WebhookSink] = []

    def keep(sink: WebhookSink) -> WebhookSink:
        made.append(sink)
        return sink

    yield keep
    for sink in made:
        sink.close()


def payments(count: int, partitions: int = 2) -> list[SinkRecord]:
    return [
        SinkRecord(
            f"acct-{i % 17}",
            {"id": i, "cents": i * 7},
            1_767_225_600_000 + i,
            TOPIC,
            i % partitions,
            i // partitions,
        )
        for i in range(count)
    ]


def as_item(record: SinkRecord) -> dict[str, Any]:
    """A record as the documented body holds it."""
    return {
        "key": record.key,
        "value": record.value,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
    }


def in_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: (item["partition"], item["offset"]))


class DeadLetters(list[tuple[SinkRecord, BaseException]]):
    def context(self) -> SinkContext:
        return SinkContext("test", load_settings(), None, lambda r, e: self.append((r, e)))


def test_batches_arrive_whole_keyed_and_signed(
    receiver: tuple[Receiver, str], closing: Callable[[WebhookSink], WebhookSink]
) -> None:
    state, url = receiver
    records = payments(2_000)
    sink = closing(WebhookSink(url, batch_size=100, secret=SECRET, headers={"X-Tenant": "t1"}))
    sink.write(records[:1_500])
    sink.write(records[1_500:])
    sink.flush()

    assert len(state.requests) == 20
    for request in state.requests:
        key, batch = request.key, request.batch
        assert request.signed, f"batch {key}: bad signature"
        assert (request.content_type, request.tenant) == ("application/json", "t1")
        partition, first, last = batch[0]["partition"], batch[0]["offset"], batch[-1]["offset"]
        assert key == f"{TOPIC}:{partition}:{first}-{last}"
        assert {item["partition"] for item in batch} == {partition}
        assert [item["offset"] for item in batch] == list(range(first, last + 1))
    assert in_order(state.delivered()) == in_order([as_item(r) for r in records])


def test_a_receiver_down_is_retried_then_backpressure_then_each_record_once(
    receiver: tuple[Receiver, str],
    closing: Callable[[WebhookSink], WebhookSink],
) -> None:
    state, url = receiver
    phase = {"now": "down"}

    def script(batch: list[dict[str, Any]]) -> Answer:
        if phase["now"] == "down":
            return Answer(503, body="maintenance")
        if phase["now"] == "slow":  # takes the batch, answers after the client gave up
            phase["now"] = "up"
            return Answer(200, delay=1.0)
        return Answer()

    state.script = script
    records = payments(3_000)
    sink = closing(WebhookSink(url, batch_size=250, secret=SECRET, timeout=0.3, retry_for=0.6))
    sink.write(records)

    started = time.monotonic()
    with pytest.raises(SinkBackpressure) as raised:
        sink.flush()
    assert time.monotonic() - started < 0.6 + 1.0, "the retries outlasted retry_for"
    assert raised.value.retry_after >= 1.0
    assert "HTTP 503" in str(raised.value)
    tries = len(state.requests)
    assert tries > 2 and {r.key for r in state.requests} == {f"{TOPIC}:0:0-249"}

    phase["now"] = "slow"
    sink.write(payments(3_200)[3_000:])  # more records while the receiver is down
    sink.flush()

    keys = [r.key for r in state.requests[tries:]]
    assert keys[0] == keys[1] == f"{TOPIC}:0:0-249", "the timed-out batch was not sent again"
    assert sorted(keys) != sorted(set(keys))  # the receiver saw a replay and dropped it
    assert in_order(state.delivered()) == in_order([as_item(r) for r in payments(3_200)])


def test_a_refused_record_goes_to_the_dead_letters(
    receiver: tuple[Receiver, str], closing: Callable[[WebhookSink], WebhookSink]
) -> None:
    state, url = receiver
    state.script = lambda batch: (
        Answer(422, body='{"error": "cents must be even"}')
        if any(item["value"]["id"] == 1_234 for item in batch)
        else Answer()
    )
    letters = DeadLetters()
    records = payments(2_000)
    sink = closing(WebhookSink(url, batch_size=500, secret=SECRET))
    sink.open(letters.context())
    sink.write(records)
    sink.flush()

    assert [r.value["id"] for r, _e in letters] == [1_234]
    reason = str(letters[0][1])
    assert "HTTP 422" in reason and "cents must be even" in reason
    delivered = in_order(state.delivered())
    assert delivered == in_order([as_item(r) for r in records if r.value["id"] != 1_234])
    assert len(state.requests) < 40  # split in halves, not sent one by one


def test_a_record_that_is_not_json_goes_to_the_dead_letters(
    receiver: tuple[Receiver, str],
    closing: Callable[[WebhookSink], WebhookSink],
) -> None:
    state, url = receiver
    letters = DeadLetters()
    sink = closing(WebhookSink(url, secret=SECRET))
    sink.open(letters.context())
    odd = SinkRecord("k", {"raw": b"\x00"}, 0, TOPIC, 0, 5)
    sink.write([*payments(5, partitions=1), odd])
    sink.flush()

    assert [(r.offset, type(e).__name__) for r, e in letters] == [(5, "SerializationError")]
    assert len(state.delivered()) == 5


def test_records_of_one_offset_have_keys_of_their_own(
    receiver: tuple[Receiver, str], closing: Callable[[WebhookSink], WebhookSink]
) -> None:
    """flat_map makes several records of one message: the second and later ones of an
    offset have a rank in the key, so halves of a refused batch never share a key."""
    state, url = receiver
    state.script = lambda batch: Answer(400) if len(batch) > 1 else Answer()
    records = [SinkRecord(None, {"n": i}, 0, TOPIC, 0, 7) for i in range(3)]
    sink = closing(WebhookSink(url, secret=SECRET))
    sink.write(records)
    sink.flush()

    assert sorted(state.taken) == [f"{TOPIC}:0:7-7", f"{TOPIC}:0:7.1-7.1", f"{TOPIC}:0:7.2-7.2"]


def test_discard_forgets_the_buffered_batches(
    receiver: tuple[Receiver, str], closing: Callable[[WebhookSink], WebhookSink]
) -> None:
    state, url = receiver
    sink = closing(WebhookSink(url, secret=SECRET))
    sink.write(payments(10))
    sink.discard()
    sink.flush()

    assert state.requests == []


def test_without_httpx_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ConfigurationError, match=r"millstream\[webhook\]"):
        WebhookSink("http://127.0.0.1:9/hook")
