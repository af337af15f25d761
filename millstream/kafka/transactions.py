"""Kafka transactions for exactly-once processing, with errors mapped to TransactionError."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from millstream.errors import AuthenticationError, AuthorizationError, TransactionError
from millstream.kafka.errors import from_exception

T = TypeVar("T")

#: How long a transactional call may block past its own timeout before its producer
#: is given up as stuck. librdkafka can wait for ever, whatever the timeout, for a
#: group coordinator that left the cluster (confluentinc/librdkafka#5456 and #5511):
#: a broker killed during send_offsets_to_transaction() is enough.
STUCK_GRACE = 5.0

#: TransactionError.code of a producer given up as stuck.
STUCK = "_STUCK"


def _attempt(
    action: Callable[[], T], what: str, retries: int = 3, *, bound: float | None = None
) -> T:
    for attempt in range(retries + 1):
        try:
            return action() if bound is None else _bounded(action, what, bound)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = error is not None and error.retriable() and attempt < retries
            if retriable:
                continue
            mapped = from_exception(exc, what)
            if isinstance(mapped, AuthenticationError | AuthorizationError):
                # The cluster refuses this producer: no new one would fare better.
                raise mapped from exc
            fatal = error is not None and (error.fatal() or not error.txn_requires_abort())
            raise TransactionError(str(mapped), code=mapped.code, fatal=fatal) from exc
    raise AssertionError("unreachable")


def _bounded(action: Callable[[], T], what: str, timeout: float) -> T:
    """``action()`` on a helper thread, given up when it blocks past ``timeout + STUCK_GRACE``.

    A call given up on goes on blocking its thread, which keeps the producer alive:
    the producer must not be used, flushed or closed again, only replaced.

    Raises:
        TransactionError: fatal, code STUCK, when ``action`` did not return in time;
            otherwise whatever ``action`` raised.
    """
    outcome: list[tuple[bool, Any]] = []

    def call() -> None:
        try:
            outcome.append((True, action()))
        except BaseException as exc:
            outcome.append((False, exc))

    limit = timeout + STUCK_GRACE
    thread = threading.Thread(target=call, name=f"millstream {what}", daemon=True)
    thread.start()
    thread.join(limit)
    if not outcome:
        raise TransactionError(
            f"{what}: no answer within {limit:g}s (its coordinator may have left the cluster)",
            code=STUCK,
            fatal=True,
        )
    returned, value = outcome[0]
    if returned:
        return value  # type: ignore[no-any-return]
    raise value


def init_transactions(producer: Producer, timeout: float, transactional_id: str = "") -> None:
    """Register the transactional id, fencing any older producer that used it.

    Raises:
        AuthorizationError: the ACLs deny the transactional id (named in the message).
        TransactionError: any other failure.
    """
    what = f"initialising transactions of transactional id {transactional_id!r}"
    _attempt(lambda: producer.init_transactions(timeout), what, bound=timeout)


def begin_transaction(producer: Producer) -> None:
    _attempt(producer.begin_transaction, "beginning a transaction")


def commit_transaction(
    producer: Producer,
    consumer: Consumer,
    offsets: list[tuple[str, int, int]],
    timeout: float,
    metadata: dict[tuple[str, int], str] | None = None,
) -> None:
    """Add the consumed ``offsets`` (topic, partition, next offset) to the open
    transaction with the consumer's group metadata, then commit it. Each call is
    given ``timeout`` seconds and given up on shortly after (see STUCK_GRACE).
    ``metadata`` is the commit metadata of the partitions that have some.

    Raises:
        TransactionError: ``fatal`` when the producer was fenced or is stuck (code
            STUCK); otherwise abortable.
    """
    if offsets:
        extra = metadata or {}
        partitions = [
            TopicPartition(t, p, o, extra[(t, p)]) if extra.get((t, p)) else TopicPartition(t, p, o)
            for t, p, o in offsets
        ]
        metadata = consumer.consumer_group_metadata()
        _attempt(
            lambda: producer.send_offsets_to_transaction(partitions, metadata, timeout),
            "adding offsets to the transaction",
            bound=timeout,
        )
    _attempt(
        lambda: producer.commit_transaction(timeout), "committing the transaction", bound=timeout
    )


def abort_transaction(producer: Producer, timeout: float) -> None:
    _attempt(lambda: producer.abort_transaction(timeout), "aborting the transaction", bound=timeout)


def transactional_config(transactional_id: str, timeout_ms: int) -> dict[str, Any]:
    return {"transactional.id": transactional_id, "transaction.timeout.ms": timeout_ms}
