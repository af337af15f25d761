"""Periodic tasks against the real cluster: one firing per period across a group of
workers, through kill -9s of the worker running the schedule; the catch-up policy
for periods missed while no worker ran; a per-second cron schedule in a time zone.

Workers are ``millstream worker`` processes of apps/periodic.py. Every execution of
a periodic task appends a line with the period it fired for to the test's log, so
the tests count firings from the workers' own account.

A kill -9 is made at a moment when every period due so far has run and its task's
offset is committed: a task that ran but was not yet committed when its worker died
runs again on the next owner (tasks are at-least-once for side effects, see
docs/tasks.md), which would be a second execution of a period that fired once.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from apps.periodic import CATCH_UP_EVERY, read_log
from support import Names, WorkerProcess, committed_offsets, end_offsets, wait_for

from millstream.config import Settings
from millstream.processors.tasks.periodic import schedule_topic

pytestmark = pytest.mark.timeout(240)

EVERY_APP = "tests.integration.apps.periodic:every_app"
CATCH_UP_APP = "tests.integration.apps.periodic:catch_up_app"
EVERY_MS = 2000
WINDOW_MS = 60_000
MISSED = re.compile(r"periodic task (\w+): periods up to (\w+)@(\S+) were missed by more than 1s")


def periods(log: Path, task: str) -> list[int]:
    """The periods (epoch ms) ``task`` ran for, in the order they ran."""
    return [round(e["period"] * 1000) for e in read_log(log) if e["task"] == task]


def problems(worker_log: Path) -> str:
    """The warnings, errors and tracebacks the workers logged."""
    lines = worker_log.read_text().splitlines()
    return "\n".join(line for line in lines if not line[:4].isdigit() or " INFO " not in line)[
        -6000:
    ]


def iso_ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(moment_ms: int, what: str) -> None:
    """Wait for a wall-clock moment: the schedule under test is a wall-clock one."""
    wait_for(lambda: now_ms() >= moment_ms, (moment_ms - now_ms()) / 1000 + 5, what, 0.05)


class Group:
    """Worker processes of one app, all logging to one file."""

    def __init__(self, app: str, env: dict[str, str], log: Path, schedule: str) -> None:
        self.app, self.env, self.log, self.schedule = app, env, log, schedule
        self.workers: list[WorkerProcess] = []
        self.killed: list[WorkerProcess] = []

    def start(self) -> WorkerProcess:
        worker = WorkerProcess(self.app, self.env, self.log)
        self.workers.append(worker)
        return worker

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.exit_code is None]

    def schedule_owners(self) -> list[WorkerProcess]:
        return [w for w in self.alive() if w.owned(self.schedule)]

    def kill(self, worker: WorkerProcess) -> None:
        worker.kill()
        self.killed.append(worker)

    def stop(self) -> list[int]:
        """SIGTERM to every worker still running; the exit codes of all not killed."""
        for worker in self.alive():
            worker.terminate()
        # One SIGTERM each (a second one would cut a worker's shutdown short).
        codes = [w.wait(60) for w in self.workers if w not in self.killed]
        return [-9 if code is None else code for code in codes]

    def kill_all(self) -> None:
        for worker in self.workers:
            worker.kill()


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_every_2s_fires_once_per_period_through_two_kills_of_the_schedule_owner(
    names: Names, bootstrap_servers: str, settings: Settings, tmp_path: Path, guarantee: str
) -> None:
    log, worker_log = tmp_path / "runs.jsonl", tmp_path / "workers.log"
    env = names.env(
        bootstrap_servers,
        tmp_path / "state",
        TEST_PERIODIC_LOG=str(log),
        TEST_GUARANTEE=guarantee,
    )
    # With exactly-once the task topic's last offset is a transaction marker.
    markers = 1 if guarantee == "exactly_once" else 0
    task_topic = f"{names.app}-task-beat"
    group = Group(EVERY_APP, env, worker_log, schedule_topic(names.app))
    try:
        for _ in range(3):
            group.start()
        wait_for(lambda: bool(periods(log, "beat")), 90, "the first firing of beat")
        window = periods(log, "beat")[0] + 2 * EVERY_MS
        end = window + WINDOW_MS

        def safe_to_kill() -> bool:
            """One worker owns the schedule, every due period ran and its task's offset is
            committed, and the next period is some way off."""
            owners = group.schedule_owners()
            due = now_ms() // EVERY_MS * EVERY_MS
            if len(owners) != 1 or due not in periods(log, "beat"):
                return False
            committed = committed_offsets(settings, names.app, task_topic, 1)[0]
            if not 0 <= end_offsets(settings, task_topic)[0] - committed <= markers:
                return False
            return now_ms() % EVERY_MS <= EVERY_MS - 300

        for kill_at in (window + 14_000, window + 34_000):
            wait_until(kill_at, f"the moment to kill (+{kill_at - window} ms)")
            wait_for(
                safe_to_kill,
                30,
                "a moment with every due period run and committed",
                observed=lambda: (
                    f"owners {[w.pid for w in group.schedule_owners()]}, "
                    f"last periods {periods(log, 'beat')[-3:]}, now {now_ms()}, committed "
                    f"{committed_offsets(settings, names.app, task_topic, 1)}, "
                    f"end {end_offsets(settings, task_topic)}"
                ),
            )
            (owner,) = group.schedule_owners()
            group.kill(owner)
            group.start()
            wait_for(lambda: len(group.schedule_owners()) == 1, 60, "a new owner of the schedule")
        last = end - EVERY_MS
        wait_for(
            lambda: last in periods(log, "beat"),
            (last - now_ms()) / 1000 + 60,
            f"the firing of the last period of the window ({last})",
            observed=lambda: f"last periods fired: {periods(log, 'beat')[-5:]}",
        )
        codes = group.stop()
        assert all(code == 0 for code in codes), (codes, problems(worker_log))
    finally:
        group.kill_all()

    fired = periods(log, "beat")
    counts = Counter(fired)
    twice = {p: n for p, n in counts.items() if n > 1}
    assert not twice, f"periods fired more than once: {twice}"
    in_window = sorted(p for p in fired if window <= p < end)
    expected = list(range(window, end, EVERY_MS))
    assert len(in_window) == WINDOW_MS // EVERY_MS == 30
    assert in_window == expected, f"missing: {sorted(set(expected) - set(in_window))}"
    assert sorted(fired) == list(range(fired[0], max(fired) + 1, EVERY_MS)), "a gap"
    runs = [e for e in read_log(log) if window / 1000 <= e["period"] < end / 1000]
    lateness = [e["ran"] - e["period"] for e in runs]
    assert len(group.killed) == 2
    median = sorted(lateness)[len(lateness) // 2]
    print(
        f"{guarantee}: {len(in_window)} firings in {WINDOW_MS / 1000:.0f} s, none twice; "
        f"two kill -9s of the schedule's owner; lateness median {median:.2f} s, "
        f"max {max(lateness):.2f} s (the handovers); "
        f"run by {len({e['pid'] for e in runs})} processes"
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
