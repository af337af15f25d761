"""Splitting a consumed batch into runs of one topic-partition."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, cast

from millstream.kafka import ConsumedRecord, Message, from_client_error

log = logging.getLogger("millstream.worker")


def partition_runs(
    messages: list[Message],
) -> Iterator[tuple[str, int, list[ConsumedRecord]]]:
    """Split a consumed batch into consecutive runs of one topic-partition, in order.

    Error events in the batch are not records: fatal ones raise, the rest are logged.
    """
    run: list[ConsumedRecord] = []
    current: tuple[str, int] | None = None
    for message in messages:
        error = message.error()
        if error is not None:
            _consumer_error(error)
            continue
        m = cast(ConsumedRecord, message)
        tp = (m.topic(), m.partition())
        if tp != current:
            if run and current is not None:
                yield current[0], current[1], run
            run, current = [], tp
        run.append(m)
    if run and current is not None:
        yield current[0], current[1], run


def _consumer_error(error: Any) -> None:
    mapped = from_client_error(error, "consuming")
    if error.fatal():
        raise mapped
    log.warning("%s", mapped)
