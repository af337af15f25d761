"""The transactional side of an exactly-once worker: its stable identity, the
producer's transactional settings, and what to do when a transaction fails."""

from __future__ import annotations

import logging
from typing import Any

from millstream.config import Settings
from millstream.errors import ProducerFenced, TransactionError
from millstream.kafka import Producer, from_exception, requires_abort
from millstream.kafka.transactions import (
    STUCK,
    abort_transaction,
    begin_transaction,
    init_transactions,
    transactional_config,
)
from millstream.processors.identity import WorkerSlot
from millstream.processors.worker_config import WorkerConfig

log = logging.getLogger("millstream.worker")


#: Errors of a transactional producer that cannot go on: it was fenced (another
#: producer took over its transactional id, or the coordinator aborted a transaction
#: open longer than transaction_timeout), and produce() then fails with _FATAL.
_FENCED = {"_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH", "_FATAL"}


def cannot_go_on(exc: Exception) -> str | None:
    """Why a transactional producer that raised ``exc`` outside a commit (produce,
    poll, flush) cannot go on, or None when ``exc`` says nothing of the kind.

    Besides a fencing, that is a transaction only an abort can end: the broker
    aborted it (the worker was paused past transaction_timeout, say), and produce()
    then fails with _STATE.
    """
    if from_exception(exc, "processing").code in _FENCED:
        return "this worker was fenced"
    if requires_abort(exc):
        return "this worker's transaction can only be aborted"
    return None


def _replace(error: TransactionError) -> ProducerFenced:
    if isinstance(error, ProducerFenced):
        return error
    if error.code == STUCK:
        return ProducerFenced(f"this worker's producer is stuck ({error})", code=error.code)
    return ProducerFenced(f"this worker was fenced ({error})", code=error.code)


class Transactions:
    """One worker's transactions: a transaction is always open between checkpoints."""

    def __init__(self, settings: Settings, app_id: str, config: WorkerConfig) -> None:
        self._settings = settings
        self._app_id = app_id
        self._timeout = config.transaction_timeout
        self._slot: WorkerSlot | None = None

    def producer_config(self) -> dict[str, Any]:
        """Producer properties with the worker's stable transactional id."""
        if self._slot is None:
            self._slot = WorkerSlot(self._settings.local_dir / "state", self._app_id)
        return transactional_config(self._slot.transactional_id, int(self._timeout * 1000))

    def start(self, producer: Producer) -> None:
        """Fence any predecessor with the same id (aborting its open transaction), then begin."""
        assert self._slot is not None, "producer_config() names the transactional id first"
        init_transactions(producer, self._timeout * 3, self._slot.transactional_id)
        begin_transaction(producer)

    def begin(self, producer: Producer) -> None:
        begin_transaction(producer)

    def abort(self, producer: Producer, cause: Exception) -> None:
        """Abort the open transaction because of ``cause``.

        Raises:
            ProducerFenced: ``cause`` or the abort itself shows the producer was fenced,
                or ``cause`` shows it is stuck.
        """
        if isinstance(cause, TransactionError) and cause.fatal:
            raise _replace(cause) from cause
        log.warning("transaction aborted (%s); reprocessing from the last commit", cause)
        try:
            abort_transaction(producer, self._timeout * 3)
        except TransactionError as exc:
            raise _replace(exc) from exc

    def release(self) -> None:
        if self._slot is not None:
            self._slot.release()
