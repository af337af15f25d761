"""A sink that POSTs records to an HTTP endpoint, as JSON arrays in batches.

A receiver sees a batch again whenever its answer was lost (a timeout after it took
the batch) and after a worker restart, which replays from the last commit. So every
batch carries an ``Idempotency-Key`` that names what it holds: its source
(topic, partition) and the positions of its first and last records. A receiver that
drops a key it has taken before drops those replays; the records also carry their
(topic, partition, offset), for a receiver that must drop replays record by record
(a batch replayed after a restart can be cut at other offsets). With a ``secret``,
``X-Millstream-Signature: sha256=<hex>`` is the HMAC-SHA256 of the body under it.

Within one flush a batch is retried, with exponential backoff, on timeouts,
connection errors, 408, 425, 429 and 5xx; past ``retry_for`` seconds the flush raises
:class:`~millstream.errors.SinkBackpressure` and keeps the batch. A batch answered
with any other status below 200 or from 300 is split in halves until the records
refused alone are found; each goes to the dead letters with the status and the body
of the answer. The body format is in docs/sinks.md ("WebhookSink").

httpx is imported when a sink is made, so that millstream runs without it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from millstream.errors import (
    ConfigurationError,
    SerializationError,
    SinkBackpressure,
    SinkRefused,
)
from millstream.sinks.base import DeadLetter, Sink, SinkContext, SinkRecord

if TYPE_CHECKING:
    import httpx

IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_HEADER = "X-Millstream-Signature"
#: Statuses below 500 that mean "not now" rather than "never".
_RETRYABLE = frozenset({408, 425, 429})
#: First and longest wait between two tries of one batch, in seconds.
FIRST_BACKOFF, MAX_BACKOFF = 0.05, 2.0
#: How much of a refusing answer's body a dead letter's reason quotes.
_QUOTED = 1000

#: Where a record stands in its partition: its offset, and its rank among the
#: records of that offset (a step such as flat_map makes several of one message).
Position = tuple[int, int]


def _refuse(record: SinkRecord, error: BaseException) -> None:
    raise error


@dataclass
class Batch:
    """Records of one source partition, in order, with their encoded JSON objects."""

    topic: str
    partition: int
    records: list[SinkRecord]
    items: list[bytes]
    positions: list[Position]

    @property
    def key(self) -> str:
        """``{topic}:{partition}:{first}-{last}``; a position is ``offset`` or, for the
        second and later records of one offset, ``offset.rank``."""
        first, last = (_position(p) for p in (self.positions[0], self.positions[-1]))
        return f"{self.topic}:{self.partition}:{first}-{last}"

    def body(self) -> bytes:
        return b"[" + b",".join(self.items) + b"]"

    def halves(self) -> tuple[Batch, Batch]:
        return self._slice(0, len(self.records) // 2), self._slice(len(self.records) // 2, None)

    def _slice(self, start: int, stop: int | None) -> Batch:
        part = slice(start, stop)
        return Batch(
            self.topic, self.partition, self.records[part], self.items[part], self.positions[part]
        )


class WebhookSink(Sink):
    """POSTs records to ``url`` as JSON arrays of at most ``batch_size`` records of one
    source partition, in offset order, one request at a time.

    ``write`` only buffers; ``flush`` sends and returns once every record written was
    accepted (2xx) or refused for good and sent to the dead letters.

    Raises:
        ConfigurationError: at construction, for a bad setting or without httpx.
        SinkBackpressure: from ``flush``, when a batch still fails after ``retry_for``
            seconds of tries; it is kept, and the next flush starts with it.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 500,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        secret: str | bytes | None = None,
        retry_for: float = 30.0,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise ConfigurationError(
                "WebhookSink", "needs httpx: pip install 'millstream[webhook]'"
            ) from exc
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError("url", f"an http:// or https:// URL, not {url!r}")
        for setting, value in (("batch_size", batch_size), ("timeout", timeout)):
            if value <= 0:
                raise ConfigurationError(setting, f"must be positive, not {value}")
        self.url, self.batch_size, self.retry_for = url, batch_size, retry_for
        self._httpx = httpx
        self._client = httpx.Client(
            headers={**(headers or {}), "Content-Type": "application/json"},
            timeout=httpx.Timeout(timeout),
        )
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._pending: deque[Batch] = deque()
        self._filling: dict[tuple[str, int], Batch] = {}
        self._last: dict[tuple[str, int], Position] = {}
        self._dead_letter: DeadLetter = _refuse

    def open(self, context: SinkContext) -> None:
        self._dead_letter = context.dead_letter

    def write(self, records: Sequence[SinkRecord]) -> None:
        """Buffer ``records``; one that is not JSON-serializable goes to the dead letters."""
        for record in records:
            try:
                item = orjson.dumps(
                    {
                        "key": record.key,
                        "value": record.value,
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "timestamp": record.timestamp,
                    }
                )
            except TypeError as exc:
                self._dead_letter(record, SerializationError(f"not JSON-serializable: {exc}"))
                continue
            self._add(record, item)

    def _add(self, record: SinkRecord, item: bytes) -> None:
        source = (record.topic, record.partition)
        last = self._last.get(source)
        rank = last[1] + 1 if last is not None and last[0] == record.offset else 0
        position = self._last[source] = (record.offset, rank)
        batch = self._filling.get(source)
        if batch is None:
            batch = self._filling[source] = Batch(record.topic, record.partition, [], [], [])
            self._pending.append(batch)
        batch.records.append(record)
        batch.items.append(item)
        batch.positions.append(position)
        if len(batch.records) >= self.batch_size:
            del self._filling[source]

    def flush(self) -> None:
        """Send every buffered batch; see the class docstring for what it raises."""
        self._filling.clear()
        deadline = time.monotonic() + self.retry_for
        while self._pending:
            batch = self._pending[0]
            response = self._post(batch, deadline)
            self._pending.popleft()
            if response.is_success:
                continue
            if len(batch.records) > 1:
                self._pending.extendleft(reversed(batch.halves()))
                continue
            answer = f"HTTP {response.status_code}: {response.text[:_QUOTED]}"
            self._dead_letter(batch.records[0], SinkRefused(f"{self.url} refused it: {answer}"))

    def _post(self, batch: Batch, deadline: float) -> httpx.Response:
        """The first answer that is not worth another try; tries until ``deadline``.

        Raises:
            SinkBackpressure: the receiver did not take the batch before ``deadline``.
        """
        body, backoff = batch.body(), FIRST_BACKOFF
        headers = {IDEMPOTENCY_HEADER: batch.key}
        if self._secret is not None:
            digest = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        while True:
            wait = backoff
            try:
                response = self._client.post(self.url, content=body, headers=headers)
            except (self._httpx.TimeoutException, self._httpx.TransportError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status < 500 and status not in _RETRYABLE:
                    return response
                problem = f"HTTP {status}"
                wait = max(wait, _retry_after(response))
            if time.monotonic() + wait > deadline:
                raise SinkBackpressure(
                    f"{self.url} did not take batch {batch.key}: {problem}",
                    retry_after=max(wait, 1.0),
                )
            time.sleep(wait)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def discard(self) -> None:
        """Forget every buffered batch: the worker replays those records."""
        self._pending.clear()
        self._filling.clear()
        self._last.clear()

    def close(self) -> None:
        self._client.close()


def _position(position: Position) -> str:
    offset, rank = position
    return f"{offset}.{rank}" if rank else str(offset)


def _retry_after(response: httpx.Response) -> float:
    """The seconds a ``Retry-After`` header asks for (0 without one, or for a date)."""
    try:
        return max(float(response.headers.get("Retry-After", 0)), 0.0)
    except ValueError:
        return 0.0
