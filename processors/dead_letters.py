"""The dead-letter queue: where records go that a pipeline could not process.

A record that fails to deserialize or raises in a step is produced, with its
original key, value and headers, to ``{app_id}-dlq``, plus headers that say why
and where it came from. The worker goes on; nothing is dropped silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from millstream.kafka import ConsumedRecord

log = logging.getLogger("millstream.dlq")

HEADER_ERROR = "millstream.error"
HEADER_ERROR_TYPE = "millstream.error.type"
HEADER_STEP = "millstream.error.step"
HEADER_TOPIC = "millstream.source.topic"
HEADER_PARTITION = "millstream.source.partition"
HEADER_OFFSET = "millstream.source.offset"

_MAX_REASON = 2000


class DeadLetterQueue:
    """Produces failed records to one dead-letter topic and counts them."""

    def __init__(self, topic: str, produce: Callable[..., Any]) -> None:
        self.topic = topic
        self.count = 0
        self._produce = produce
        self._last_warning = 0.0

    def send(
        self, message: ConsumedRecord, error: BaseException, step: str, *, topic: str | None = None
    ) -> None:
        """Produce ``message`` to the dead-letter topic (or ``topic``) with the reason
        ``step`` failed."""
        error_type = type(error)
        headers: list[tuple[str, str | bytes]] = list(message.headers() or [])
        headers += [
            (HEADER_ERROR, f"{error_type.__name__}: {error}"[:_MAX_REASON]),
            (HEADER_ERROR_TYPE, f"{error_type.__module__}.{error_type.__qualname__}"),
            (HEADER_STEP, step),
            (HEADER_TOPIC, message.topic() or ""),
            (HEADER_PARTITION, str(message.partition())),
            (HEADER_OFFSET, str(message.offset())),
        ]
        timestamp = message.timestamp()[1]
        self._produce(
            topic or self.topic,
            message.value(),
            message.key(),
            headers=headers,
            timestamp=timestamp if timestamp > 0 else 0,
        )
        if topic is None:
            self.count += 1
            self._warn(message, error, step)

    def _warn(self, message: ConsumedRecord, error: BaseException, step: str) -> None:
        now = time.monotonic()
        if now - self._last_warning < 5.0:
            return
        self._last_warning = now
        log.warning(
            "record %s[%d]@%d failed in %s (%s: %s); sent to %s (%d so far)",
            message.topic(),
            message.partition(),
            message.offset(),
            step,
            type(error).__name__,
            error,
            self.topic,
            self.count,
        )
