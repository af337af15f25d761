"""Splitting a consumed batch into runs of one topic-partition."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, cast

from millstream.errors import AuthorizationError
from millstream.kafka import ConsumedRecord, Message, from_client_error

log = logging.getLogger("millstream.worker")

#: Most records a run holds. The pipeline keeps a run's rows alive while it goes
#: through it step by step; runs this small stay in the CPU caches, and a 5,000-record
#: run cost about 1.5 us more per record in the passthrough benchmark.
RUN_SIZE = 500


def partition_runs(
    messages: list[Message], max_run: int = RUN_SIZE, group: str = ""
) -> Iterator[tuple[str, int, list[ConsumedRecord]]]:
    """Split a consumed batch into consecutive runs of one topic-partition, in order,
    of at most ``max_run`` records.

    Error events in the batch are not records: fatal ones and the ACLs' refusals
    (AuthorizationError, naming ``group`` and the topic) raise, the rest are logged.
    """
    run: list[ConsumedRecord] = []
    topic, partition = "", -1
    for message in messages:
        if message.error() is not None:
            _consumer_error(message.error(), group)
            continue
        m = cast(ConsumedRecord, message)
        if m.partition() != partition or m.topic() != topic:
            yield from _chunks(topic, partition, run, max_run)
            run, topic, partition = [], m.topic(), m.partition()
        run.append(m)
    yield from _chunks(topic, partition, run, max_run)


def _chunks(
    topic: str, partition: int, run: list[ConsumedRecord], size: int
) -> Iterator[tuple[str, int, list[ConsumedRecord]]]:
    if len(run) <= size:
        if run:
            yield topic, partition, run
        return
    for start in range(0, len(run), size):
        yield topic, partition, run[start : start + size]


def _consumer_error(error: Any, group: str) -> None:
    mapped = from_client_error(error, f"consuming in group {group!r}" if group else "consuming")
    # librdkafka retries a denied topic or group for ever, without marking it fatal.
    if error.fatal() or isinstance(mapped, AuthorizationError):
        raise mapped
    log.warning("%s", mapped)
