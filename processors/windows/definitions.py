"""Window definitions: what a window is, independent of how it is aggregated.

See docs/windows.md for the exact semantics of each kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from millstream.errors import ConfigurationError


def _ms(value: timedelta | int | float, setting: str, *, allow_zero: bool = False) -> int:
    ms = int(value.total_seconds() * 1000) if isinstance(value, timedelta) else int(value * 1000)
    if ms < 0 or (ms == 0 and not allow_zero):
        raise ConfigurationError(setting, f"must be a positive duration, got {value!r}")
    return ms


@dataclass(frozen=True, init=False)
class Window:
    """Base of the window kinds; durations are kept in milliseconds."""

    grace_ms: int

    kind = "window"

    def describe(self) -> str:
        return self.kind


@dataclass(frozen=True, init=False)
class Hopping(Window):
    """Fixed-size windows ``[start, start + size)`` starting every ``advance``."""

    size_ms: int
    advance_ms: int
    kind = "hopping"

    def __init__(
        self,
        size: timedelta,
        advance: timedelta,
        *,
        grace: timedelta = timedelta(0),
    ) -> None:
        size_ms = _ms(size, "size")
        advance_ms = _ms(advance, "advance")
        if advance_ms > size_ms:
            raise ConfigurationError("advance", "must not exceed the window size")
        object.__setattr__(self, "size_ms", size_ms)
        object.__setattr__(self, "advance_ms", advance_ms)
        object.__setattr__(self, "grace_ms", _ms(grace, "grace", allow_zero=True))


@dataclass(frozen=True, init=False)
class Tumbling(Hopping):
    """Fixed-size, non-overlapping windows ``[start, start + size)``."""

    kind = "tumbling"

    def __init__(self, size: timedelta, *, grace: timedelta = timedelta(0)) -> None:
        super().__init__(size, size, grace=grace)


@dataclass(frozen=True, init=False)
class Sliding(Window):
    """Windows ``[start, start + size]`` defined by pairs of records at most ``size`` apart."""

    size_ms: int
    kind = "sliding"

    def __init__(self, size: timedelta, *, grace: timedelta = timedelta(0)) -> None:
        object.__setattr__(self, "size_ms", _ms(size, "size"))
        object.__setattr__(self, "grace_ms", _ms(grace, "grace", allow_zero=True))


@dataclass(frozen=True, init=False)
class Session(Window):
    """Activity sessions: records of a key at most ``gap`` apart belong to one session."""

    gap_ms: int
    kind = "session"

    def __init__(self, gap: timedelta, *, grace: timedelta = timedelta(0)) -> None:
        object.__setattr__(self, "gap_ms", _ms(gap, "gap"))
        object.__setattr__(self, "grace_ms", _ms(grace, "grace", allow_zero=True))
