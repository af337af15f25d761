"""Which offsets of one partition are done, when records finish out of order.

Records of one partition may finish in any order (tasks with different keys run
concurrently). Kafka keeps one committed offset per partition, so the offset to
commit is the lowest one not yet done; the offsets done above it travel in the
commit's metadata string, so that after a restart or a rebalance they are not run
again. This is the scheme of Confluent's parallel consumer, in millstream's own
encoding:

    ms1:<base64 of varints>    gap, run, gap, run, ...

relative to the committed offset: skip ``gap`` offsets (not done), then ``run``
offsets that are done, and so on. Kafka bounds the metadata (4096 bytes by default,
``offset.metadata.max.bytes``); when the done offsets above the lowest unfinished
one no longer fit in :data:`METADATA_LIMIT`, :attr:`Completions.full` turns true and
the caller must stop starting records further ahead until the lowest one finishes
(back-pressure), instead of committing metadata the broker would refuse.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from millstream.errors import SerializationError

#: Metadata length millstream writes at most: Kafka's default limit is 4096 bytes.
METADATA_LIMIT = 4000

_PREFIX = "ms1:"


class Completions:
    """The done offsets of one partition at and above its committed offset.

    Not thread-safe: the worker's thread records completions its task runners report.
    """

    def __init__(
        self, committed: int, done: Iterable[int] = (), limit: int = METADATA_LIMIT
    ) -> None:
        self._low = committed
        self._done: set[int] = set()
        self._limit = limit
        self._encoded: str | None = ""
        for offset in done:
            self.done(offset)

    @classmethod
    def from_commit(cls, committed: int, metadata: str | None) -> Completions:
        """The completions a commit recorded: ``committed`` and the done offsets its
        ``metadata`` lists above it.

        Raises:
            SerializationError: the metadata was not written by :meth:`metadata`.
        """
        return cls(committed, decode(committed, metadata or ""))

    def done(self, offset: int) -> None:
        """Record that the record at ``offset`` finished (again is harmless)."""
        if offset < self._low:
            return
        self._encoded = None
        self._done.add(offset)
        done, low = self._done, self._low
        while low in done:
            done.remove(low)
            low += 1
        self._low = low

    def is_done(self, offset: int) -> bool:
        """Whether ``offset`` finished already: a redelivered record that must not run."""
        return offset < self._low or offset in self._done

    @property
    def committable_offset(self) -> int:
        """The lowest offset not done: every offset below it is."""
        return self._low

    @property
    def pending_done(self) -> int:
        """How many offsets above :attr:`committable_offset` are done."""
        return len(self._done)

    def metadata(self) -> str:
        """The done offsets above the committable offset, for the commit's metadata
        (the empty string when there are none)."""
        if self._encoded is None:
            self._encoded = encode(self._low, self._done)
        return self._encoded

    @property
    def full(self) -> bool:
        """True when the metadata has reached the limit: start nothing further ahead
        until the lowest unfinished record finishes."""
        return len(self.metadata()) >= self._limit


def encode(base: int, done: Iterable[int]) -> str:
    """The metadata string of ``done`` offsets, all above ``base``."""
    offsets = sorted(done)
    if not offsets:
        return ""
    out = bytearray()
    position = base
    i = 0
    while i < len(offsets):
        start = offsets[i]
        if start < position:
            raise ValueError(f"offset {start} is below the base {base}")
        run = 1
        while i + run < len(offsets) and offsets[i + run] == start + run:
            run += 1
        _varint(out, start - position)
        _varint(out, run)
        position = start + run
        i += run
    return _PREFIX + base64.b64encode(bytes(out)).decode("ascii")


def decode(base: int, metadata: str) -> list[int]:
    """The done offsets a metadata string lists above ``base``.

    Raises:
        SerializationError: ``metadata`` is neither empty nor millstream's encoding.
    """
    if not metadata:
        return []
    if not metadata.startswith(_PREFIX):
        raise SerializationError(f"commit metadata {metadata[:40]!r} is not millstream's")
    try:
        data = base64.b64decode(metadata[len(_PREFIX) :], validate=True)
    except ValueError as exc:
        raise SerializationError(f"commit metadata is not valid base64: {exc}") from exc
    numbers = _varints(data)
    if len(numbers) % 2:
        raise SerializationError("commit metadata ends inside a (gap, run) pair")
    offsets: list[int] = []
    position = base
    for gap, run in zip(numbers[::2], numbers[1::2], strict=True):
        start = position + gap
        offsets.extend(range(start, start + run))
        position = start + run
    return offsets


def _varint(out: bytearray, number: int) -> None:
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)


def _varints(data: bytes) -> list[int]:
    numbers: list[int] = []
    number = shift = 0
    for byte in data:
        number |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            continue
        numbers.append(number)
        number = shift = 0
    if shift:
        raise SerializationError("commit metadata ends inside a number")
    return numbers
