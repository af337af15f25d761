"""The synchronous publisher: records in, idempotent acks=all delivery out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from millstream.config import Settings
from millstream.errors import MillstreamError
from millstream.kafka import ANY_PARTITION, produce_when_room
from millstream.kafka.delivery import ClientException, produce_error
from millstream.producers._core import (
    DeliveryCallback,
    Destination,
    ProducerCore,
    queue_full_error,
)
from millstream.producers.delivery import (
    BulkCounter,
    Delivery,
    DeliveryLedger,
    DoneCallback,
    Headers,
    ProducerRecord,
    PublishCounts,
)
from millstream.serde import SerdeSpec

log = logging.getLogger("millstream.producers")

# Delivery reports are served every this many records, so callbacks keep flowing
# and the report queue stays small without a poll per record.
_POLL_EVERY = 1024


class Publisher:
    """Publishes records to Kafka through one idempotent producer (acks=all).

    Records are batched (``linger_ms``) and compressed (``compression``);
    ``producer_config`` overrides any librdkafka property. Within a partition,
    records are delivered in the order they were published, without duplicates
    from retries. When the client's local queue is full, ``publish`` polls until
    there is room, for at most ``queue_full_timeout`` seconds.

    Thread-safe: several threads may publish through one Publisher. As a context
    manager it flushes on exit and raises :class:`DeliveryError` if any record failed.

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
        self._producer = self._core.producer
        self._ledger = DeliveryLedger(self._producer.poll)
        self._queue_full_timeout = queue_full_timeout
        self._unpolled = 0

    @property
    def settings(self) -> Settings:
        return self._core.settings

    @property
    def failed(self) -> int:
        """Records that failed delivery since this publisher was created."""
        return self._ledger.failed

    def publish(
        self,
        topic: Destination,
        value: Any,
        *,
        key: Any = None,
        headers: Headers | None = None,
        timestamp: int | None = None,
        partition: int | None = None,
        on_delivery: DoneCallback | None = None,
    ) -> Delivery:
        """Enqueue one record and return its :class:`Delivery` handle.

        ``timestamp`` is epoch milliseconds (default: now); ``partition`` overrides
        the key-hash partitioner; ``on_delivery(delivery)`` runs once the outcome
        is known, in whichever thread polls the producer. Blocks only while the
        local queue is full.

        Raises:
            SerializationError: the key or value cannot be encoded.
            DeliveryError: the client refused the record, or the queue stayed full
                for ``queue_full_timeout`` seconds.
        """
        name, key_serde, value_serde = self._core.target(topic)
        delivery = Delivery(self._ledger, on_delivery)
        self._send(
            name,
            value_serde.serialize(value),
            key_serde.serialize(key),
            partition,
            timestamp,
            headers,
            delivery,
        )
        return delivery

    def publish_many(
        self,
        topic: Destination,
        records: Iterable[ProducerRecord],
        *,
        on_progress: Callable[[int], object] | None = None,
        timeout: float | None = None,
    ) -> PublishCounts:
        """Publish every record, wait for all outcomes, and return how many were delivered.

        The bulk path: one shared delivery callback counts outcomes, no handles.
        ``on_progress(completed)`` is called now and then with the number of records
        whose outcome is known. Delivery failures are counted, not raised.

        Raises:
            SerializationError, DeliveryError: as :meth:`publish`, for a record that
                cannot be enqueued; the records before it are flushed first and the
                error carries a note saying how many of them were delivered.
            DeliveryError: records were still undelivered after ``timeout`` seconds.
        """
        counter = BulkCounter(self._ledger)
        try:
            self._enqueue_all(topic, records, counter, on_progress)
        except MillstreamError as exc:
            self._flush_quietly(timeout)
            exc.add_note(
                f"{counter.delivered} record(s) were delivered to {self._core.target(topic)[0]!r} "
                f"before the error, {counter.failed} failed"
            )
            raise
        self._core.flush(timeout)
        if on_progress is not None:
            on_progress(counter.completed)
        return counter.counts()

    def poll(self, timeout: float = 0) -> int:
        """Serve pending delivery reports (runs done-callbacks); returns how many were served."""
        return self._producer.poll(timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every published record was delivered or failed.

        Raises:
            DeliveryError: records were still queued after ``timeout`` seconds.
        """
        self._core.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then report failures. The publisher must not be used afterwards.

        Raises:
            DeliveryError: records failed delivery (summarising them), or were still
                queued after ``timeout`` seconds.
        """
        self._core.flush(timeout)
        failures = self._ledger.failure_summary()
        if failures is not None:
            raise failures

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._flush_quietly(self._queue_full_timeout)

    def _enqueue_all(
        self,
        topic: Destination,
        records: Iterable[ProducerRecord],
        counter: BulkCounter,
        on_progress: Callable[[int], object] | None,
    ) -> None:
        name, key_serde, value_serde = self._core.target(topic)
        encode_key, encode_value = key_serde.serialize, value_serde.serialize
        produce, poll = self._producer.produce, self._producer.poll
        for enqueued, (value, key, timestamp, headers, partition) in enumerate(records, 1):
            value_bytes, key_bytes = encode_value(value), encode_key(key)
            try:
                # Positional arguments: the client parses them faster than keywords.
                produce(
                    name,
                    value_bytes,
                    key_bytes,
                    -1 if partition is None else partition,
                    counter,
                    None,
                    timestamp or 0,
                    headers,
                )
            except BufferError:
                self._wait_for_room(
                    name, value_bytes, key_bytes, partition, timestamp, headers, counter
                )
            except ClientException as exc:
                raise produce_error(exc, name) from exc
            if not enqueued % _POLL_EVERY:
                poll(0)
                if on_progress is not None:
                    on_progress(counter.completed)

    def _send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int | None,
        timestamp: int | None,
        headers: Headers | None,
        callback: DeliveryCallback,
    ) -> None:
        if not self._core.try_produce(topic, value, key, partition, timestamp, headers, callback):
            self._wait_for_room(topic, value, key, partition, timestamp, headers, callback)
        self._unpolled += 1
        if self._unpolled >= _POLL_EVERY:
            self._unpolled = 0
            self._producer.poll(0)

    def _wait_for_room(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int | None,
        timestamp: int | None,
        headers: Headers | None,
        callback: DeliveryCallback,
    ) -> None:
        started = time.monotonic()
        try:
            produce_when_room(
                self._producer,
                topic,
                value,
                key,
                ANY_PARTITION if partition is None else partition,
                timestamp or 0,
                headers,
                callback,
                patience=self._queue_full_timeout,
            )
        except BufferError:
            raise queue_full_error(topic, time.monotonic() - started) from None
        except ClientException as exc:
            raise produce_error(exc, topic) from exc

    def _flush_quietly(self, timeout: float | None) -> None:
        try:
            self._core.flush(timeout)
        except MillstreamError as exc:
            log.warning("flushing the publisher: %s", exc)

    def __repr__(self) -> str:
        return f"<Publisher {self._core.settings.bootstrap_servers} failed={self.failed}>"
