"""The shape of a consumed record as millstream uses it.

confluent-kafka's ``Message`` types every accessor as optional because the same
class also carries errors; records that passed the error check always have a
topic, partition, offset and timestamp. Code past that check speaks of
:class:`ConsumedRecord`.
"""

from __future__ import annotations

from typing import Protocol


class ConsumedRecord(Protocol):
    def topic(self) -> str: ...

    def partition(self) -> int: ...

    def offset(self) -> int: ...

    def key(self) -> bytes | None: ...

    def value(self) -> bytes | None: ...

    def headers(self) -> list[tuple[str, bytes]] | None: ...

    def timestamp(self) -> tuple[int, int]: ...
