"""When a periodic task fires: fixed intervals (``every=``) and cron expressions.

A schedule is a set of instants (epoch milliseconds, its *periods*) that it answers
one question about: the first one after a given instant. Everything the scheduler
needs (the next period, the periods missed since the last one fired, the latest of
them) is built from that question, so the two kinds of schedule stay small.

``every`` periods are the multiples of the interval since the Unix epoch: every
worker computes the same ones without agreeing on a start. Cron expressions are
read in a time zone (``zoneinfo``); a local time that the zone skips (the hour a
daylight-saving change jumps over) does not fire, and one that it repeats fires
once, at its first occurrence.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Protocol

from millstream.errors import ConfigurationError

#: How far ahead a cron expression is searched for its next time (a 29 February in a
#: leap year may be almost eight years away).
MAX_DAYS = 8 * 366 + 2

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
_WEEKDAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
#: (field, lowest, highest, names) in the order of a six-field expression.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _WEEKDAYS),
)


class Schedule(Protocol):
    """The periods of a periodic task."""

    def next_after(self, instant: int) -> int | None:
        """The first period after ``instant`` (epoch ms), None when there is none."""
        ...


@dataclass(frozen=True)
class Every:
    """Every ``interval_ms`` milliseconds, at the multiples of it since the epoch."""

    interval_ms: int

    def next_after(self, instant: int) -> int:
        return (instant // self.interval_ms + 1) * self.interval_ms

    def __str__(self) -> str:
        return f"every {timedelta(milliseconds=self.interval_ms)}"


class Cron:
    """A cron expression in a time zone: five fields (minute hour day-of-month month
    day-of-week), or six with seconds first, or a macro such as ``@hourly``.

    Fields take ``*``, numbers, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n``,
    lists joined with commas, and names (``JAN``, ``MON``); Sunday is 0 or 7. When
    both day fields are restricted a day matches either, as in Vixie cron.

    Raises:
        ConfigurationError: the expression (``cron``) or the zone (``timezone``) is
            invalid, or the expression never matches a date.
    """

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self.expression = expression
        self.zone = _zone(timezone)
        text = _MACROS.get(expression.strip().lower(), expression)
        fields = text.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise ConfigurationError(
                "cron", f"{expression!r} must have 5 fields (or 6, seconds first)"
            )
        parsed = [_field(expression, f, spec) for f, spec in zip(fields, _FIELDS, strict=True)]
        self.seconds, self.minutes, self.hours = (sorted(values) for values in parsed[:3])
        self.days, self.months = parsed[3], parsed[4]
        self.weekdays = frozenset(d % 7 for d in parsed[5])
        # A field starting with * (or ?) does not restrict the day: the other one decides.
        self._either_day = not (fields[3][0] in "*?" or fields[5][0] in "*?")
        first = date(2000, 1, 1)
        if not any(self._day_matches(first + timedelta(days=n)) for n in range(MAX_DAYS)):
            raise ConfigurationError("cron", f"{expression!r} never matches a date")

    def next_after(self, instant: int) -> int | None:
        after = datetime.fromtimestamp(instant / 1000, UTC)
        floor = after.astimezone(self.zone).replace(tzinfo=None, microsecond=0)
        day = floor.date()
        for _ in range(MAX_DAYS):
            if self._day_matches(day):
                found = self._first_in_day(day, floor if day == floor.date() else None, instant)
                if found is not None:
                    return found
            day += timedelta(days=1)
        return None

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_date, by_weekday = day.day in self.days, day.isoweekday() % 7 in self.weekdays
        return (by_date or by_weekday) if self._either_day else (by_date and by_weekday)

    def _first_in_day(self, day: date, floor: datetime | None, instant: int) -> int | None:
        """The first time of ``day`` (not before ``floor``) that is after ``instant``."""
        for hour in self.hours:
            if floor is not None and hour < floor.hour:
                continue
            for minute in self.minutes:
                if floor is not None and (hour, minute) < (floor.hour, floor.minute):
                    continue
                for second in self.seconds:
                    local = datetime.combine(day, clock_time(hour, minute, second))
                    if floor is not None and local < floor:
                        continue
                    found = self._instant(local)
                    if found is not None and found > instant:
                        return found
        return None

    def _instant(self, local: datetime) -> int | None:
        """Epoch ms of a local time (its first occurrence), None if the zone skips it."""
        utc = local.replace(tzinfo=self.zone).astimezone(UTC)
        if utc.astimezone(self.zone).replace(tzinfo=None) != local:
            return None
        return round(utc.timestamp() * 1000)

    def __str__(self) -> str:
        return f"cron {self.expression!r} ({self.zone.key})"


def latest_before(schedule: Schedule, after: int, before: int) -> int | None:
    """The latest period in the open interval (``after``, ``before``), if any.

    Searches back from ``before`` in windows that double from a minute, so a dense
    schedule (every second) and a sparse one (once a year) both take few steps.
    """
    window = 60_000
    while True:
        start = max(after, before - window)
        found, period = None, schedule.next_after(start)
        while period is not None and period < before:
            found, period = period, schedule.next_after(period)
        if found is not None or start == after:
            return found
        window *= 2


def make_schedule(
    every: float | timedelta | None, cron: str | None, timezone: str | None
) -> Every | Cron:
    """The schedule of ``@app.periodic``: exactly one of ``every`` and ``cron``.

    Raises:
        ConfigurationError: both or neither are given, ``every`` is under a second or
            not whole milliseconds, ``timezone`` comes without ``cron``, or the cron
            expression or time zone is invalid.
    """
    if (every is None) == (cron is None):
        raise ConfigurationError("every", "give exactly one of every= and cron=")
    if every is not None:
        if timezone is not None:
            raise ConfigurationError("timezone", "applies to cron= only; every= counts in UTC")
        seconds = every.total_seconds() if isinstance(every, timedelta) else float(every)
        if seconds < 1:
            raise ConfigurationError("every", f"must be at least one second, got {every!r}")
        interval = round(seconds * 1000)
        if abs(interval - seconds * 1000) > 1e-6:
            raise ConfigurationError("every", f"must be whole milliseconds, got {every!r}")
        return Every(interval)
    assert cron is not None
    if not isinstance(cron, str):
        raise ConfigurationError("cron", f"must be a string, got {cron!r}")
    return Cron(cron, timezone or "UTC")


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ConfigurationError("timezone", f"unknown time zone {name!r}") from exc


def _field(
    expression: str, text: str, spec: tuple[str, int, int, dict[str, int]]
) -> frozenset[int]:
    """The values one field of a cron expression allows."""
    name, low, high, names = spec

    def number(word: str) -> int:
        value = names.get(word.upper()) if names else None
        if value is None:
            if not word.isdigit():
                raise ConfigurationError("cron", f"{expression!r}: {name} {word!r} is not valid")
            value = int(word)
        return value

    values: set[int] = set()
    for item in text.split(","):
        body, slash, step_text = item.partition("/")
        step = number(step_text) if slash else 1
        if body in ("*", "?"):
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = number(first), number(last)
        else:
            start = number(body)
            end = high if slash else start
        if step < 1 or not low <= start <= end <= high:
            raise ConfigurationError(
                "cron", f"{expression!r}: {name} {item!r} is outside {low}-{high}"
            )
        values.update(range(start, end + 1, step))
    return frozenset(values)
