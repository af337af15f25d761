"""Kafka transactions for exactly-once processing, with errors mapped to TransactionError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from millstream.errors import TransactionError
from millstream.kafka.errors import from_exception

T = TypeVar("T")


def _attempt(action: Callable[[], T], what: str, retries: int = 3) -> T:
    for attempt in range(retries + 1):
        try:
            return action()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = error is not None and error.retriable() and attempt < retries
            if retriable:
                continue
            mapped = from_exception(exc, what)
            fatal = error is not None and (error.fatal() or not error.txn_requires_abort())
            raise TransactionError(str(mapped), code=mapped.code, fatal=fatal) from exc
    raise AssertionError("unreachable")


def init_transactions(producer: Producer, timeout: float) -> None:
    """Register the transactional id, fencing any older producer that used it."""
    _attempt(lambda: producer.init_transactions(timeout), "initialising transactions")


def begin_transaction(producer: Producer) -> None:
    _attempt(producer.begin_transaction, "beginning a transaction")


def commit_transaction(
    producer: Producer,
    consumer: Consumer,
    offsets: list[tuple[str, int, int]],
    timeout: float,
) -> None:
    """Add the consumed ``offsets`` (topic, partition, next offset) to the open
    transaction with the consumer's group metadata, then commit it.

    Raises:
        TransactionError: ``fatal`` when the producer was fenced; otherwise abortable.
    """
    if offsets:
        partitions = [TopicPartition(t, p, o) for t, p, o in offsets]
        metadata = consumer.consumer_group_metadata()
        _attempt(
            lambda: producer.send_offsets_to_transaction(partitions, metadata, timeout),
            "adding offsets to the transaction",
        )
    _attempt(lambda: producer.commit_transaction(timeout), "committing the transaction")


def abort_transaction(producer: Producer, timeout: float) -> None:
    _attempt(lambda: producer.abort_transaction(timeout), "aborting the transaction")


def transactional_config(transactional_id: str, timeout_ms: int) -> dict[str, Any]:
    return {"transactional.id": transactional_id, "transaction.timeout.ms": timeout_ms}
