"""Group consumers whose assignments start at offsets they looked up themselves.

A partition assigned without an offset (``OFFSET_INVALID`` or ``OFFSET_STORED``)
makes librdkafka look up the group's committed offset with an OffsetFetch request
of its own. When that request fails as a whole with NOT_COORDINATOR, which is what
a broker answers for a moment after the group's coordinator moved (its broker died
or came back), librdkafka 2.16 never asks again (confluentinc/librdkafka#5586): the
partition is never fetched, and with KIP-848 the member also never completes a later
revocation, so the group cannot hand that member's partitions to anyone else either.
The consumer keeps heartbeating, so the group never moves them: a silent, permanent
stall. The only trace is one "Failed to fetch committed offsets for 0 partition(s)"
consumer error.

:class:`GroupConsumer` therefore looks those offsets up itself, through
``committed()``, asking again while the coordinator moves, and hands librdkafka
explicit offsets only: librdkafka's own lookup is never started.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    OFFSET_STORED,
    Consumer,
    KafkaException,
    TopicPartition,
)
from confluent_kafka import KafkaError as _CKError

from millstream.errors import KafkaError
from millstream.kafka.errors import from_client_error, from_exception

log = logging.getLogger("millstream.kafka")

#: Offsets that leave the start of a partition to librdkafka's committed-offset lookup.
_LOOKUP = {OFFSET_INVALID, OFFSET_STORED}

#: Answers of an offsets lookup that mean "ask again shortly" (by librdkafka's names):
#: the coordinator is moving or loading, or a transaction's offsets are not settled yet.
_AGAIN = {
    "_WAIT_COORD",
    "UNSTABLE_OFFSET_COMMIT",
    "NOT_COORDINATOR",
    "COORDINATOR_NOT_AVAILABLE",
    "COORDINATOR_LOAD_IN_PROGRESS",
}

#: ``auto.offset.reset`` values and the logical offset each one starts a partition at.
_RESETS = {
    "smallest": OFFSET_BEGINNING,
    "earliest": OFFSET_BEGINNING,
    "beginning": OFFSET_BEGINNING,
    "largest": OFFSET_END,
    "latest": OFFSET_END,
    "end": OFFSET_END,
}

#: How long an assignment may wait for the group's committed offsets, in all.
LOOKUP_TIMEOUT = 60.0
#: Longest single ``committed()`` call.
LOOKUP_CALL_TIMEOUT = 10.0

Lookup = Callable[[list[TopicPartition], float], list[TopicPartition]]


class GroupConsumer(Consumer):
    """A confluent-kafka Consumer whose ``incremental_assign`` never leaves the committed
    offset of a partition to librdkafka's own lookup (see the module docstring).

    Only assignment changes: ``consume()`` and every other method are the client's own.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        #: Where a partition without a committed offset starts (``auto.offset.reset``).
        self.reset_offset = reset_offset(config.get("auto.offset.reset"))
        self._closing = False

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        """Add ``partitions`` to the assignment; those without an offset start at the
        group's committed offset, or at ``auto.offset.reset`` when there is none.

        Blocks while it looks the offsets up (up to :data:`LOOKUP_TIMEOUT`). While the
        consumer closes, partitions are added as they are: they are revoked again at
        once, and a closing consumer's lookups would only fail.

        Raises:
            KafkaError: the committed offsets could not be read in that time, or the
                group refused (not authorized, say).
        """
        if not self._closing:
            resolve_offsets(self._committed, partitions, self.reset_offset)
        super().incremental_assign(partitions)

    def close(self) -> None:
        """Leave the group and release the client (rebalance callbacks may run meanwhile)."""
        self._closing = True
        super().close()

    def _committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return list(self.committed(partitions, timeout=timeout))


def reset_offset(policy: object) -> int:
    """The logical offset ``auto.offset.reset`` = ``policy`` starts a partition at;
    OFFSET_INVALID for ``error`` (librdkafka then reports the partition's error)."""
    if policy is None:
        return OFFSET_END  # librdkafka's default
    return _RESETS.get(str(policy).lower(), OFFSET_INVALID)


def resolve_offsets(
    lookup: Lookup,
    partitions: list[TopicPartition],
    reset: int,
    timeout: float = LOOKUP_TIMEOUT,
    call_timeout: float = LOOKUP_CALL_TIMEOUT,
) -> None:
    """Give every partition of ``partitions`` without an offset the group's committed
    offset (``reset`` where nothing was committed), in place, asking ``lookup``
    (``Consumer.committed``) again while the group's coordinator moves.

    Raises:
        KafkaError: an offset was still unknown after ``timeout`` seconds, or the
            lookup failed for a reason that waiting does not cure.
    """
    missing = {(tp.topic, tp.partition): tp for tp in partitions if tp.offset in _LOOKUP}
    if not missing:
        return
    deadline = time.monotonic() + timeout
    pause = 0.2
    while True:
        request = [TopicPartition(topic, partition) for topic, partition in missing]
        remaining = deadline - time.monotonic()
        error: KafkaError | None
        try:
            answers = lookup(request, max(0.1, min(call_timeout, remaining)))
        except KafkaException as exc:
            error = _lookup_error(exc.args[0] if exc.args else None, exc)
        else:
            error = None
            for answer in answers:
                if answer.error is not None:
                    error = _lookup_error(answer.error, None)
                    continue
                tp = missing.pop((answer.topic, answer.partition), None)
                if tp is not None:
                    tp.offset = answer.offset if answer.offset >= 0 else reset
            if not missing:
                return
        if error is None:
            error = KafkaError("reading committed offsets: some partitions had no answer")
        elif not error.retriable:
            raise error
        if time.monotonic() + pause > deadline:
            raise KafkaError(
                f"{error} (still failing after {timeout:g}s)", code=error.code, retriable=True
            )
        log.info("%s; asking again in %.1fs", error, pause)
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


def _lookup_error(error: object, exc: BaseException | None) -> KafkaError:
    context = "reading the group's committed offsets"
    if isinstance(error, _CKError):
        mapped = from_client_error(error, context)
        if error.name() in _AGAIN:
            return KafkaError(str(mapped), code=mapped.code, retriable=True)
        return mapped
    return from_exception(exc, context) if exc is not None else KafkaError(context)
