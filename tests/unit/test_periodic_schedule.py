"""Periodic tasks without a broker: schedules (every=, cron with time zones), the
scheduler's plan for due and missed periods, and the declaration's checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from millstream import App
from millstream.errors import ConfigurationError
from millstream.processors.tasks.periodic import (
    Periodic,
    ScheduleStep,
    firing_id,
    plan,
    schedule_topic,
)
from millstream.processors.tasks.schedule import Cron, Every, latest_before, make_schedule

BERLIN = ZoneInfo("Europe/Berlin")


def ms(text: str, zone: ZoneInfo | None = None) -> int:
    """Epoch ms of an ISO time, read in ``zone`` when it has no offset of its own."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone or UTC)
    return round(moment.timestamp() * 1000)


def utc(instant: int | None) -> str:
    assert instant is not None
    return datetime.fromtimestamp(instant / 1000, UTC).isoformat()


# -- every= ------------------------------------------------------------------------------


def test_every_fires_at_multiples_of_the_interval_since_the_epoch() -> None:
    every = make_schedule(timedelta(seconds=2), None, None)
    assert every == Every(2000)
    assert every.next_after(1_000) == 2_000
    assert every.next_after(2_000) == 4_000  # strictly after
    assert every.next_after(3_999) == 4_000
    assert make_schedule(90, None, None).next_after(ms("2026-12-01T10:00:00")) == ms(
        "2026-12-01T10:01:30"
    )


@pytest.mark.parametrize(
    ("every", "cron", "timezone", "setting"),
    [
        (None, None, None, "every"),
        (2, "* * * * *", None, "every"),
        (0.5, None, None, "every"),
        (1.0005, None, None, "every"),
        (5, None, "UTC", "timezone"),
        (None, "* * * *", None, "cron"),
        (None, "60 * * * *", None, "cron"),
        (None, "* 24 * * *", None, "cron"),
        (None, "* * 0 * *", None, "cron"),
        (None, "* * * FOO *", None, "cron"),
        (None, "*/0 * * * *", None, "cron"),
        (None, "5-1 * * * *", None, "cron"),
        (None, "0 0 30 2 *", None, "cron"),  # never: 30 February
        (None, "* * * * *", "Mars/Olympus", "timezone"),
        (None, "* * * * *", "../etc", "timezone"),
    ],
)
def test_an_invalid_schedule_fails_naming_its_setting(
    every: float | None, cron: str | None, timezone: str | None, setting: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make_schedule(every, cron, timezone)
    assert caught.value.setting == setting


# -- cron ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * *", "2026-12-01T12:03:10", "2026-12-01T12:05:00"),
        ("*/5 * * * *", "2026-12-01T12:05:00", "2026-12-01T12:10:00"),
        ("*/2 * * * * *", "2026-12-01T12:00:00.500", "2026-12-01T12:00:02"),
        ("15,45 * * * * *", "2026-12-01T12:00:46", "2026-12-01T12:01:15"),
        ("5/20 * * * *", "2026-12-01T12:26:00", "2026-12-01T12:45:00"),
        ("0 9-17/4 * * *", "2026-12-01T13:00:00", "2026-12-01T17:00:00"),
        ("@hourly", "2026-12-01T12:00:01", "2026-12-01T13:00:00"),
        ("@yearly", "2026-12-01T12:00:00", "2027-01-01T00:00:00"),
        ("0 0 * * 7", "2026-12-01T00:00:00", "2026-12-06T00:00:00"),  # 7 is Sunday too
        ("0 0 * * sun", "2026-12-01T00:00:00", "2026-12-06T00:00:00"),
        ("0 0 1 jan-mar *", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        # Both day fields restricted: the 13th or a Friday, whichever comes first.
        ("0 0 13 * FRI", "2026-12-01T00:00:00", "2026-12-04T00:00:00"),
        ("0 0 13 * FRI", "2026-12-11T00:00:00", "2026-12-13T00:00:00"),
        # Day of month is *: the weekday alone decides (the first Monday in June).
        ("0 0 * 6 MON", "2026-01-01T00:00:00", "2026-06-01T00:00:00"),
        ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
    ],
)
def test_cron_next_time_in_utc(expression: str, after: str, expected: str) -> None:
    assert Cron(expression).next_after(ms(after)) == ms(expected)


def test_cron_reads_its_fields_in_its_time_zone() -> None:
    cron = make_schedule(None, "0 9 * * MON-FRI", "Europe/Berlin")
    # Tuesday 1 December 2026, 08:00 UTC is 09:00 in Berlin (CET, UTC+1).
    assert utc(cron.next_after(ms("2026-12-01T07:00:00"))) == "2026-12-01T08:00:00+00:00"
    # Friday evening: next is Monday.
    assert utc(cron.next_after(ms("2026-12-04T10:00:00"))) == "2026-12-07T08:00:00+00:00"


def test_a_local_time_the_zone_skips_does_not_fire() -> None:
    cron = Cron("30 2 * * *", "Europe/Berlin")
    # 29 March 2026: clocks go from 02:00 to 03:00, there is no 02:30.
    after = ms("2026-03-29T00:00:00", BERLIN)
    assert cron.next_after(after) == ms("2026-03-30T02:30:00", BERLIN)


def test_a_local_time_the_zone_repeats_fires_once() -> None:
    cron = Cron("30 2 * * *", "Europe/Berlin")
    # 25 October 2026: clocks go from 03:00 back to 02:00; 02:30 happens twice.
    first = cron.next_after(ms("2026-10-25T00:00:00", BERLIN))
    assert utc(first) == "2026-10-25T00:30:00+00:00"  # 02:30 CEST
    assert first is not None
    assert utc(cron.next_after(first)) == "2026-10-26T01:30:00+00:00"  # next day, CET
    every_minute = Cron("* * * * *", "Europe/Berlin")
    # After the first 02:59 the repeated hour is skipped: the next minute is 03:00 CET.
    last_of_first_pass = ms("2026-10-25T00:59:00")
    assert utc(every_minute.next_after(last_of_first_pass)) == "2026-10-25T02:00:00+00:00"


def test_latest_before_finds_dense_and_sparse_periods() -> None:
    assert latest_before(Every(2000), 0, 10_001) == 10_000
    assert latest_before(Every(2000), 0, 10_000) == 8_000
    assert latest_before(Every(2000), 8_000, 10_000) is None
    yearly = Cron("@yearly")
    found = latest_before(yearly, ms("2020-06-01T00:00:00"), ms("2026-12-01T00:00:00"))
    assert found == ms("2026-01-01T00:00:00")
    assert latest_before(yearly, ms("2026-06-01T00:00:00"), ms("2026-12-01T00:00:00")) is None


# -- the scheduler's plan --------------------------------------------------------------------


def periodic(*, catch_up: bool = True, grace: int = 60_000) -> Periodic:
    app = App("unit-periodic", bootstrap_servers="127.0.0.1:1")

    @app.periodic(every=2)
    def tick() -> None: ...

    return Periodic(tick, Every(2000), catch_up, grace)


def test_a_new_schedule_starts_now() -> None:
    step = plan(periodic(), None, 101_500)
    assert step.fire == [] and step.handled == 101_500
    assert plan(periodic(), step.handled, 102_000).fire == [102_000]


def test_due_periods_fire_once_each_late_ones_included() -> None:
    assert plan(periodic(), 100_000, 101_999).fire == []
    step = plan(periodic(), 100_000, 102_300)
    assert step.fire == [102_000] and step.handled == 102_000 and step.missed is None
    assert plan(periodic(), 102_000, 102_900).fire == []
    # A handover took 7 s: every period in it fires, oldest first.
    late = plan(periodic(), 102_000, 109_100)
    assert late.fire == [104_000, 106_000, 108_000] and late.handled == 108_000


@pytest.mark.parametrize("catch_up", [True, False])
def test_periods_missed_past_the_grace_fire_once_or_not_at_all(catch_up: bool) -> None:
    # Nobody ran the schedule from 100 s to 131 s; the grace is 5 s.
    step = plan(periodic(catch_up=catch_up, grace=5_000), 100_000, 131_000)
    assert step.missed == 124_000  # the latest period more than 5 s old
    within_grace = [126_000, 128_000, 130_000]
    assert step.fire == ([124_000] if catch_up else []) + within_grace
    assert step.handled == 130_000
    assert plan(periodic(catch_up=catch_up, grace=5_000), step.handled, 131_500).fire == []


def test_missed_periods_are_handled_even_when_none_is_due_after_them() -> None:
    step = plan(periodic(catch_up=False, grace=1_000), 100_000, 109_500)
    assert step.fire == [] and step.missed == 108_000 and step.handled == 108_000


def test_a_firing_is_named_by_task_and_period() -> None:
    assert firing_id("report", ms("2026-12-01T06:30:00")) == "report@2026-12-01T06:30:00.000+00:00"


# -- the declaration --------------------------------------------------------------------------


def test_periodic_registers_a_one_partition_task_and_the_schedule_topic() -> None:
    app = App("unit-periodic", bootstrap_servers="127.0.0.1:1")

    @app.periodic(cron="*/5 * * * *", timezone="Europe/Berlin", retries=1)
    def report() -> str:
        return "done"

    @app.periodic(every=timedelta(minutes=1), catch_up=False)
    def cleanup() -> None: ...

    assert report() == "done"
    assert app.topology.tasks["report"].partitions == 1
    assert app.topology.tasks["report"].policy.retries == 1
    roots = app.topology.sources[schedule_topic("unit-periodic")]
    (step,) = [c for r in roots for c in r.children if isinstance(c, ScheduleStep)]
    assert set(step.periodics) == {"report", "cleanup"}
    assert step.periodics["cleanup"].catch_up is False
    assert app.topology.topics["unit-periodic-schedule"].partitions == 1
    assert "unit-periodic-schedule-changelog" in app.topology.internal_topics()


def test_periodic_rejects_functions_that_need_arguments_and_bad_options() -> None:
    app = App("unit-periodic", bootstrap_servers="127.0.0.1:1")
    with pytest.raises(ConfigurationError, match="without arguments"):

        @app.periodic(every=5)
        def needs(n: int) -> None: ...

    with pytest.raises(ConfigurationError) as caught:
        app.periodic(every=5, cron="* * * * *")
    assert caught.value.setting == "every"
    with pytest.raises(ConfigurationError) as caught:
        app.periodic(cron="*/5 * * *")
    assert caught.value.setting == "cron"
    with pytest.raises(ConfigurationError) as caught:
        app.periodic(every=5, misfire_grace=0.5)
    assert caught.value.setting == "misfire_grace"


def test_a_periodic_task_is_ordered_in_an_app_whose_tasks_are_queued() -> None:
    app = App("periodic-queue", task_mode="queue")

    @app.task
    def queued() -> None: ...

    @app.periodic(every=timedelta(seconds=5))
    def tick() -> None: ...

    assert queued.mode == "queue"
    assert tick.mode == "ordered"
