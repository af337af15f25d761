"""Transactional calls that block past their timeout give their producer up as stuck.

librdkafka can block in send_offsets_to_transaction() for ever when the group
coordinator left the cluster; a stand-in producer blocks the same way here. The
broker-side case runs in tests/integration/test_chaos.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from millstream.errors import ProducerFenced, TransactionError
from millstream.kafka import transactions
from millstream.kafka.transactions import STUCK, commit_transaction
from millstream.processors.exactly_once import Transactions, cannot_go_on
from millstream.processors.worker_config import WorkerConfig


class BlockingProducer:
    """Blocks in the transactional call named ``blocks_in`` until released."""

    def __init__(self, blocks_in: str) -> None:
        self.blocks_in = blocks_in
        self.release = threading.Event()
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.blocks_in:
            self.release.wait(30)

    def send_offsets_to_transaction(self, *_: Any) -> None:
        self._call("send_offsets_to_transaction")

    def commit_transaction(self, *_: Any) -> None:
        self._call("commit_transaction")


class GroupMember:
    def consumer_group_metadata(self) -> object:
        return object()


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transactions, "STUCK_GRACE", 0.3)


@pytest.mark.parametrize("blocks_in", ["send_offsets_to_transaction", "commit_transaction"])
def test_a_call_blocked_past_its_timeout_is_a_stuck_producer(blocks_in: str) -> None:
    producer = BlockingProducer(blocks_in)
    started = time.monotonic()
    try:
        with pytest.raises(TransactionError) as raised:
            commit_transaction(producer, GroupMember(), [("in", 0, 42)], 0.2)  # type: ignore[arg-type]
    finally:
        producer.release.set()
    waited = time.monotonic() - started
    assert raised.value.code == STUCK
    assert raised.value.fatal
    assert "no answer within 0.5s" in str(raised.value)
    assert 0.5 <= waited < 5, f"gave up after {waited:.2f}s"
    assert producer.calls[-1] == blocks_in


def test_calls_that_return_commit() -> None:
    producer = BlockingProducer(blocks_in="nothing")
    commit_transaction(producer, GroupMember(), [("in", 0, 42)], 0.2)  # type: ignore[arg-type]
    assert producer.calls == ["send_offsets_to_transaction", "commit_transaction"]


def test_what_a_call_raises_reaches_the_caller() -> None:
    class Failing(BlockingProducer):
        def commit_transaction(self, *_: Any) -> None:
            raise ValueError("not a Kafka error")

    with pytest.raises(ValueError, match="not a Kafka error"):
        commit_transaction(Failing("nothing"), GroupMember(), [], 0.2)  # type: ignore[arg-type]


def test_a_stuck_producer_makes_the_worker_rejoin() -> None:
    stuck = TransactionError("committing the transaction: stuck", code=STUCK, fatal=True)
    fenced = TransactionError("committing the transaction: fenced", code="_FENCED", fatal=True)
    txn = Transactions(None, "app", WorkerConfig(exactly_once=True))  # type: ignore[arg-type]

    with pytest.raises(ProducerFenced, match="producer is stuck"):
        txn.abort(None, stuck)  # type: ignore[arg-type]
    with pytest.raises(ProducerFenced, match="was fenced"):
        txn.abort(None, fenced)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (KafkaError._FENCED, "this worker was fenced"),
        (KafkaError._STATE, "this worker's transaction can only be aborted"),
        (KafkaError._MSG_TIMED_OUT, None),
    ],
)
def test_what_a_producer_raises_outside_a_commit_says(code: int, reason: str | None) -> None:
    exc = KafkaException(KafkaError(code, "Unable to produce message"))
    assert cannot_go_on(exc) == reason
