"""Periodic tasks against the real cluster: one firing per period across a group of
workers, through kill -9s of the worker running the schedule; the catch-up policy
for periods missed while no worker ran; a per-second cron schedule in a time zone.

Workers are ``millstream worker`` processes of apps/periodic.py. Every execution of
a periodic task appends a line with the period it fired for to the test's log, so
the tests count firings from the workers' own account (tests/periodic_support.py).
The same scenario with exactly-once is in test_periodic_exactly_once.py.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from apps.periodic import CATCH_UP_EVERY
from periodic_support import Group, fire_through_kills, now_ms, periods, read_log, wait_until
from support import Names, wait_for

from millstream.config import Settings
from millstream.processors.tasks.periodic import schedule_topic

pytestmark = pytest.mark.timeout(240)

CATCH_UP_APP = "tests.integration.apps.periodic:catch_up_app"
MISSED = re.compile(r"periodic task (\w+): periods up to (\w+)@(\S+) were missed by more than 1s")


def iso_ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def test_every_2s_fires_30_times_in_60_s_through_two_kills_of_the_schedule_owner(
    names: Names, bootstrap_servers: str, settings: Settings, tmp_path: Path
) -> None:
    fire_through_kills(
        names,
        bootstrap_servers,
        settings,
        tmp_path,
        guarantee="at_least_once",
        window_ms=60_000,
        kills_after=(14_000, 34_000),
    )


def test_missed_periods_catch_up_once_or_not_by_policy_and_cron_fires_each_period(
    names: Names, bootstrap_servers: str, tmp_path: Path
) -> None:
    log, worker_log = tmp_path / "runs.jsonl", tmp_path / "workers.log"
    env = names.env(bootstrap_servers, tmp_path / "state", TEST_PERIODIC_LOG=str(log))
    every = round(CATCH_UP_EVERY * 1000)
    group = Group(CATCH_UP_APP, env, worker_log, schedule_topic(names.app))
    try:
        group.start()
        wait_for(
            lambda: bool(periods(log, "keep")) and bool(periods(log, "skip")),
            90,
            "the first firings of keep and skip",
        )
        assert group.stop() == [0], worker_log.read_text()[-3000:]
        last = max(periods(log, "keep"))
        assert max(periods(log, "skip")) == last
        # Nobody runs the schedule for the periods last + 8 s and last + 16 s; the worker
        # comes back more than the grace (1 s) after the second. How long it takes to
        # take the schedule over decides which period is the latest missed one: its
        # warning names it.
        wait_until(last + 2 * every + 1300, "two periods without a worker")
        restart = now_ms()
        restarted = group.start()
        wait_for(
            lambda: len(MISSED.findall(restarted.text())) == 2,
            60,
            "the warnings about the missed periods of keep and skip",
            observed=lambda: restarted.text()[-2000:],
        )
        missed = {name: iso_ms(at) for name, _, at in MISSED.findall(restarted.text())}
        assert "this worker runs the schedule: keep (every 0:00:08)" in restarted.text()
        assert missed["keep"] == missed["skip"] >= last + 2 * every, (last, missed)
        after = missed["keep"] + every
        wait_for(
            lambda: {after} <= set(periods(log, "keep")) & set(periods(log, "skip")),
            30,
            "keep and skip to fire the period after the restart",
        )
        assert group.stop() == [0, 0], worker_log.read_text()[-3000:]
    finally:
        group.kill_all()

    keep, skip = periods(log, "keep"), periods(log, "skip")
    assert Counter(keep).most_common(1)[0][1] == 1, keep
    assert Counter(skip).most_common(1)[0][1] == 1, skip
    # catch_up=True: the latest missed period fired once, on the restart, and none of
    # the others. catch_up=False: none of them.
    assert [p for p in keep if last < p <= after] == [missed["keep"], after], (last, keep)
    assert [p for p in skip if last < p <= after] == [after], (last, skip)
    check_cron(read_log(log), first_missed=last + every, restart=restart)


def check_cron(runs: list[dict[str, Any]], *, first_missed: int, restart: int) -> None:
    """``tick`` fired each even second from its first to its last period, once, also
    across the outage (late, within its 60 s grace)."""
    ticks = [round(e["period"] * 1000) for e in runs if e["task"] == "tick"]
    assert Counter(ticks).most_common(1)[0][1] == 1, "a cron period fired twice"
    assert all(p % 2000 == 0 for p in ticks), ticks
    assert sorted(ticks) == list(range(min(ticks), max(ticks) + 1, 2000)), "a cron gap"
    late = [e for e in runs if e["task"] == "tick" and first_missed <= e["period"] * 1000 < restart]
    assert len(late) >= 4, "the outage covered no cron period"
    assert all(e["ran"] * 1000 > restart for e in late)
