"""Worker groups and firing logs of the periodic-task tests (tests/integration/
test_periodic*.py), and their main scenario: a group of workers firing ``every=2s``
while the worker running the schedule is killed with SIGKILL.

A kill is made at a moment when every period due so far has run and its task's
offset is committed: a task that ran but was not yet committed when its worker died
runs again on the next owner of its partition (tasks are at-least-once for side
effects, see docs/tasks.md), which would be a second execution of a period that
fired once.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from support import Names, WorkerProcess, committed_offsets, end_offsets, wait_for

from millstream.config import Settings
from millstream.processors.tasks.periodic import schedule_topic

EVERY_APP = "tests.integration.apps.periodic:every_app"
EVERY_MS = 2000


def read_log(path: Path) -> list[dict[str, Any]]:
    """The executions of periodic tasks logged so far (tests/integration/apps/periodic.py)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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


def fire_through_kills(
    names: Names,
    bootstrap_servers: str,
    settings: Settings,
    tmp_path: Path,
    *,
    guarantee: str,
    window_ms: int,
    kills_after: tuple[int, ...],
) -> None:
    """Three workers fire ``beat`` every 2 s; ``kills_after`` ms into a window of
    ``window_ms``, the worker running the schedule is killed with SIGKILL and another
    one started. Every period of the window must run, once."""
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
        end = window + window_ms

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

        for kill_at in (window + after for after in kills_after):
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
    assert len(in_window) == window_ms // EVERY_MS
    assert in_window == expected, f"missing: {sorted(set(expected) - set(in_window))}"
    assert sorted(fired) == list(range(fired[0], max(fired) + 1, EVERY_MS)), "a gap"
    runs = [e for e in read_log(log) if window / 1000 <= e["period"] < end / 1000]
    lateness = [e["ran"] - e["period"] for e in runs]
    assert len(group.killed) == len(kills_after)
    median = sorted(lateness)[len(lateness) // 2]
    print(
        f"{guarantee}: {len(in_window)} firings in {window_ms / 1000:.0f} s, none twice; "
        f"{len(kills_after)} kill -9s of the schedule's owner; lateness median {median:.2f} s, "
        f"max {max(lateness):.2f} s (the handovers); "
        f"run by {len({e['pid'] for e in runs})} processes"
    )
