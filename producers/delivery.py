"""Delivery outcomes: the per-record :class:`Delivery` handle and what it resolves to.

The client reports each record's outcome from inside ``poll``/``flush``. A
:class:`Delivery` *is* the callback the client calls, so publishing a record
allocates one small object and no closure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from millstream.errors import DeliveryError
from millstream.kafka import Message
from millstream.kafka.delivery import ClientError, delivery_error

log = logging.getLogger("millstream.producers")

#: Record headers as the client accepts them: a dict, or a list of pairs (repeats allowed).
Headers = dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]]


class RecordMetadata(NamedTuple):
    """Where a record landed: its topic, partition, offset and timestamp (epoch ms)."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class ProducerRecord(NamedTuple):
    """One record for :meth:`Publisher.publish_many`; ``None`` fields take the defaults."""

    value: Any
    key: Any = None
    timestamp: int | None = None
    headers: Headers | None = None
    partition: int | None = None


@dataclass(frozen=True)
class PublishCounts:
    """The outcome of a bulk publish: records delivered, records failed, the first failure."""

    delivered: int
    failed: int
    first_error: DeliveryError | None = None


def metadata_of(message: Message) -> RecordMetadata:
    """The metadata of a delivered message."""
    return RecordMetadata(
        message.topic() or "",
        message.partition() or 0,
        message.offset() or 0,
        message.timestamp()[1],
    )


class DeliveryLedger:
    """Failures across one producer's records, and the poll that drives delivery reports.

    Shared by every handle of one publisher, so failures surface on ``close``
    even when nobody looked at the handles.
    """

    def __init__(self, poll: Callable[[float], int]) -> None:
        self.poll = poll
        self.failed = 0
        self.first_error: DeliveryError | None = None

    def record_failure(self, error: DeliveryError) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = error

    def failure_summary(self) -> DeliveryError | None:
        """One DeliveryError describing every failure so far, or None when there was none."""
        first = self.first_error
        if first is None:
            return None
        return DeliveryError(
            f"{self.failed} record(s) failed delivery; first: {first}",
            code=first.code,
            retriable=first.retriable,
        )


# One lock for all handles: taken only to hand over done-callbacks, never while waiting.
_callbacks_lock = threading.Lock()

DoneCallback = Callable[["Delivery"], object]


class Delivery:
    """A future-like handle for one published record.

    The outcome arrives when the producer is polled: by later ``publish`` calls,
    ``flush``, ``poll``, or by :meth:`result` itself, which polls while it waits.
    Done-callbacks run in the thread that polls; exceptions they raise are logged.
    """

    __slots__ = ("_callbacks", "_ledger", "_outcome")

    def __init__(self, ledger: DeliveryLedger, callback: DoneCallback | None = None) -> None:
        self._ledger = ledger
        self._outcome: RecordMetadata | DeliveryError | None = None
        self._callbacks: list[DoneCallback] | None = None if callback is None else [callback]

    def __call__(self, error: ClientError | None, message: Message) -> None:
        """The client's delivery report for this record; not for users to call."""
        if error is None:
            outcome: RecordMetadata | DeliveryError = metadata_of(message)
        else:
            outcome = delivery_error(error, message.topic())
            self._ledger.record_failure(outcome)
        with _callbacks_lock:
            self._outcome = outcome
            callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            for callback in callbacks:
                self._run(callback)

    def done(self) -> bool:
        """True once the record was delivered or failed."""
        return self._outcome is not None

    def result(self, timeout: float | None = None) -> RecordMetadata:
        """Block until the outcome is known (polling the producer) and return the metadata.

        Raises:
            DeliveryError: the record could not be delivered.
            TimeoutError: no outcome within ``timeout`` seconds.
        """
        outcome = self._wait(timeout)
        if isinstance(outcome, DeliveryError):
            raise outcome
        return outcome

    def exception(self, timeout: float | None = None) -> DeliveryError | None:
        """Like :meth:`result`, but return the DeliveryError instead of raising it."""
        outcome = self._wait(timeout)
        return outcome if isinstance(outcome, DeliveryError) else None

    def add_done_callback(self, callback: DoneCallback) -> None:
        """Call ``callback(self)`` once done; immediately (in this thread) if done already."""
        with _callbacks_lock:
            if self._outcome is None:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        self._run(callback)

    def _wait(self, timeout: float | None) -> RecordMetadata | DeliveryError:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._outcome is None:
            wait = 0.1
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise TimeoutError(f"record not delivered within {timeout:g}s")
            self._ledger.poll(wait)
        return self._outcome

    def _run(self, callback: DoneCallback) -> None:
        try:
            callback(self)
        except Exception:
            log.exception("delivery callback %r raised", callback)

    def __repr__(self) -> str:
        state = "pending" if self._outcome is None else repr(self._outcome)
        return f"<Delivery {state}>"


class BulkCounter:
    """The one delivery callback of a bulk publish: counts outcomes instead of keeping handles."""

    __slots__ = ("_ledger", "delivered", "failed", "first_error")

    def __init__(self, ledger: DeliveryLedger) -> None:
        self._ledger = ledger
        self.delivered = 0
        self.failed = 0
        self.first_error: DeliveryError | None = None

    def __call__(self, error: ClientError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1
            return
        failure = delivery_error(error, message.topic())
        self._ledger.record_failure(failure)
        self.failed += 1
        if self.first_error is None:
            self.first_error = failure

    @property
    def completed(self) -> int:
        return self.delivered + self.failed

    def counts(self) -> PublishCounts:
        return PublishCounts(self.delivered, self.failed, self.first_error)
