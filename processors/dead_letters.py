"""Dead letters: the headers that say why a record left its pipeline, and where from.

A record that fails to deserialize or raises in a step is produced, with its
original key, value and headers, to ``{app_id}-dlq`` (late records to
``{app_id}-late``), plus the headers below. The worker goes on; nothing is
dropped silently. The record collector does the sending.
"""

from __future__ import annotations

from millstream.kafka import ConsumedRecord

HEADER_ERROR = "millstream.error"
HEADER_ERROR_TYPE = "millstream.error.type"
HEADER_STEP = "millstream.error.step"
HEADER_TOPIC = "millstream.source.topic"
HEADER_PARTITION = "millstream.source.partition"
HEADER_OFFSET = "millstream.source.offset"

_MAX_REASON = 2000


def error_type_name(error: BaseException) -> str:
    """The stable name of an error's class for ``millstream.error.type``: its module and
    qualified name (millstream's own errors all live in ``millstream.errors``)."""
    error_type = type(error)
    return f"{error_type.__module__}.{error_type.__qualname__}"


def dead_letter_headers(
    message: ConsumedRecord,
    error: BaseException,
    step: str,
    extra: list[tuple[str, str | bytes]] | None = None,
) -> list[tuple[str, str | bytes]]:
    """The message's own headers followed by the reason ``step`` failed with ``error``,
    then ``extra`` (which replaces the message's headers of the same names)."""
    replaced = {name for name, _ in extra or ()}
    headers: list[tuple[str, str | bytes]] = [
        (name, value) for name, value in message.headers() or [] if name not in replaced
    ]
    headers += [
        (HEADER_ERROR, f"{type(error).__name__}: {error}"[:_MAX_REASON]),
        (HEADER_ERROR_TYPE, error_type_name(error)),
        (HEADER_STEP, step),
        (HEADER_TOPIC, message.topic() or ""),
        (HEADER_PARTITION, str(message.partition())),
        (HEADER_OFFSET, str(message.offset())),
    ]
    return headers + list(extra or ())
