"""The asyncio publisher: ``await publish(...)`` resolves when Kafka acknowledged the record.

A background thread polls the producer; delivery reports are handed to the
event loop in batches (one ``call_soon_threadsafe`` per poll, not per record).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from millstream.config import Settings
from millstream.errors import DeliveryError
from millstream.kafka import Message
from millstream.kafka.delivery import ClientError, delivery_error
from millstream.producers._core import Destination, ProducerCore, queue_full_error
from millstream.producers.delivery import Headers, RecordMetadata, metadata_of
from millstream.serde import SerdeSpec

log = logging.getLogger("millstream.producers")

_Outcome = tuple["asyncio.Future[RecordMetadata]", RecordMetadata | None, DeliveryError | None]


class _LoopHandoff:
    """Moves delivery outcomes from the poll thread onto the event loop, in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: collections.deque[_Outcome] = collections.deque()
        self._scheduled = False

    def push(self, outcome: _Outcome) -> None:
        # Append before reading the flag, and clear the flag before draining:
        # an outcome pushed during a drain is either drained or schedules a new one.
        self._pending.append(outcome)
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop is closed: nobody awaits these any more
                self._pending.clear()

    def _drain(self) -> None:
        self._scheduled = False
        pending = self._pending
        while pending:
            future, metadata, error = pending.popleft()
            if future.done():  # the awaiting task was cancelled
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(metadata)  # type: ignore[arg-type]


class _FutureReport:
    """Delivery callback of one record: resolves its future through the loop handoff."""

    __slots__ = ("_future", "_handoff")

    def __init__(self, handoff: _LoopHandoff, future: asyncio.Future[RecordMetadata]) -> None:
        self._handoff = handoff
        self._future = future

    def __call__(self, error: ClientError | None, message: Message) -> None:
        if error is None:
            self._handoff.push((self._future, metadata_of(message), None))
        else:
            self._handoff.push((self._future, None, delivery_error(error, message.topic())))


class AsyncPublisher:
    """Publishes records from asyncio code; same guarantees and options as :class:`Publisher`.

    Use ``async with AsyncPublisher(...) as publisher:`` (or ``await start()`` and
    ``await close()``). ``publish`` never blocks the event loop: when the local
    queue is full it sleeps until the poll thread has made room, for at most
    ``queue_full_timeout`` seconds.

    Raises:
        ConfigurationError: an invalid setting, serde, compression or producer property.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str | None = None,
        settings: Settings | None = None,
        key_serde: SerdeSpec = "str",
        value_serde: SerdeSpec = "json",
        linger_ms: float = 5,
        compression: str = "lz4",
        producer_config: Mapping[str, Any] | None = None,
        queue_full_timeout: float = 30.0,
        client_id: str | None = None,
    ) -> None:
        self._core = ProducerCore(
            settings=settings,
            bootstrap_servers=bootstrap_servers,
            key_serde=key_serde,
            value_serde=value_serde,
            linger_ms=linger_ms,
            compression=compression,
            producer_config=producer_config,
            client_id=client_id,
        )
        self._queue_full_timeout = queue_full_timeout
        self._handoff: _LoopHandoff | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    async def start(self) -> None:
        """Start the poll thread, bound to the running loop (``publish`` calls this itself)."""
        if self._poller is not None:
            return
        self._handoff = _LoopHandoff(asyncio.get_running_loop())
        self._stop.clear()
        self._poller = threading.Thread(
            target=self._poll_until_stopped, name="millstream-async-publisher", daemon=True
        )
        self._poller.start()

    async def publish(
        self,
        topic: Destination,
        value: Any,
        *,
        key: Any = None,
        headers: Headers | None = None,
        timestamp: int | None = None,
        partition: int | None = None,
    ) -> RecordMetadata:
        """Publish one record and return its metadata once Kafka acknowledged it.

        Raises:
            SerializationError: the key or value cannot be encoded.
            DeliveryError: the record failed delivery or was refused, or the local
                queue stayed full for ``queue_full_timeout`` seconds.
        """
        await self.start()
        assert self._handoff is not None
        name, key_serde, value_serde = self._core.target(topic)
        value_bytes, key_bytes = value_serde.serialize(value), key_serde.serialize(key)
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        report = _FutureReport(self._handoff, future)
        args = (name, value_bytes, key_bytes, partition, timestamp, headers, report)
        if not self._core.try_produce(*args):
            await self._wait_for_room(args)
        return await future

    async def flush(self, timeout: float | None = None) -> None:
        """Wait (in a worker thread) until every published record was delivered or failed.

        Raises:
            DeliveryError: records were still queued after ``timeout`` seconds.
        """
        await asyncio.to_thread(self._core.flush, timeout)

    async def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the poll thread. Outstanding ``publish`` calls resolve first."""
        try:
            await self.flush(timeout)
        finally:
            self._stop.set()
            if self._poller is not None:
                await asyncio.to_thread(self._poller.join)
                self._poller = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.close()
            return
        try:
            await self.close(self._queue_full_timeout)
        except DeliveryError as error:  # the body's exception is the one to propagate
            log.warning("closing the async publisher: %s", error)

    async def _wait_for_room(self, args: tuple[Any, ...]) -> None:
        started = time.monotonic()
        while time.monotonic() - started < self._queue_full_timeout:
            await asyncio.sleep(0.005)
            if self._core.try_produce(*args):
                return
        raise queue_full_error(args[0], time.monotonic() - started)

    def _poll_until_stopped(self) -> None:
        poll = self._core.producer.poll
        while not self._stop.is_set():
            poll(0.05)
        poll(0)
