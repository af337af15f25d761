"""Queue mode on a real share group: workers share one partition, a killed worker's
tasks are delivered again, and a task that always fails is dead-lettered once.

The workers are ``millstream worker`` processes of tests/integration/apps/queue_tasks.py,
which log the start and end of every execution (pid, task id, time) to a file.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from support import Names, WorkerProcess, consume_all, wait_for

from millstream import App
from millstream.config import Settings
from millstream.errors import ConfigurationError, TaskFailed
from millstream.kafka import GroupConfig
from millstream.processors.tasks.queue_completions import done_topic
from millstream.processors.tasks.queue_group import share_group

APP = "tests.integration.apps.queue_tasks:app"
TASKS = 400
SECONDS = 0.5
CONCURRENCY = 8


def _events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _sender(app_id: str, bootstrap: str) -> tuple[App, Any, Any]:
    """The app as a sender sees it: the same tasks, in queue mode (never run here)."""
    app = App(app_id, bootstrap_servers=bootstrap, task_mode="queue")

    @app.task(topic=f"{app_id}-queue", partitions=1, concurrency=CONCURRENCY)
    def nap(n: int) -> int:
        return n

    @app.task(topic=f"{app_id}-queue", partitions=1, retries=2, backoff=0.2)
    def doomed(n: int) -> int:
        return n

    return app, nap, doomed


class Workers:
    """``count`` queue-mode workers of one app, logging to ``tmp``."""

    def __init__(self, names: Names, bootstrap: str, tmp: Path, app_id: str, count: int) -> None:
        self.runs = tmp / f"{app_id}.runs.jsonl"
        self.log = tmp / f"{app_id}.log"
        env = names.env(
            bootstrap,
            tmp / "state",
            TEST_APP_ID=app_id,
            TEST_TASK_LOG=str(self.runs),
            TEST_TASK_SECONDS=str(SECONDS),
            TEST_CONCURRENCY=str(CONCURRENCY),
        )
        self.processes = [WorkerProcess(APP, env, self.log) for _ in range(count)]

    def joined(self) -> bool:
        return all(p.running() and "queue tasks: share group" in p.text() for p in self.processes)

    def pids_that_ran(self) -> set[int]:
        return {e["pid"] for e in _events(self.runs) if e["event"] == "start"}

    def stop(self) -> None:
        codes = [p.stop() for p in self.processes]
        assert all(code in (0, -9) for code in codes), self.processes[0].text()[-3000:]

    def kill_all(self) -> None:
        for process in self.processes:
            process.kill()


def _warm_up(workers: Workers, nap: Any) -> None:
    """Send warm-up tasks (``n=-1``) until every worker has started one: then each is
    a member of the share group with the partition assigned."""
    wait_for(workers.joined, 60, "every worker to join the share group")
    pids = {p.pid for p in workers.processes}
    deadline = time.monotonic() + 90
    while not pids <= workers.pids_that_ran():
        assert time.monotonic() < deadline, f"workers {pids - workers.pids_that_ran()} ran nothing"
        handles = [nap.send(-1) for _ in range(CONCURRENCY * len(pids))]
        for handle in handles:
            handle.result(timeout=60)


def _timed_run(names: Names, bootstrap: str, tmp: Path, count: int) -> list[dict[str, Any]]:
    """Run TASKS naps of SECONDS on ``count`` workers; returns their measured executions
    (start and end per task id, with the worker's pid)."""
    app_id = f"{names.app}-w{count}"
    _, nap, _ = _sender(app_id, bootstrap)
    workers = Workers(names, bootstrap, tmp, app_id, count)
    try:
        _warm_up(workers, nap)
        handles = [nap.send(n) for n in range(TASKS)]
        assert [h.result(timeout=180) for h in handles] == list(range(TASKS))
        workers.stop()
    finally:
        workers.kill_all()
    runs: dict[str, dict[str, Any]] = defaultdict(dict)
    for e in _events(workers.runs):
        if e["n"] >= 0:
            runs[e["id"]].update({"pid": e["pid"], e["event"]: e["at"]})
    assert len(runs) == TASKS
    return list(runs.values())


def _elapsed(runs: list[dict[str, Any]]) -> float:
    return max(r["end"] for r in runs) - min(r["start"] for r in runs)


def _all_busy_at_once(runs: list[dict[str, Any]]) -> float | None:
    """A moment when every worker was running a task, if there was one."""
    by_pid: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in runs:
        by_pid[r["pid"]].append((r["start"], r["end"]))
    for moment in sorted(r["start"] for r in runs):
        if all(any(s <= moment < e for s, e in spans) for spans in by_pid.values()):
            return moment
    return None


@pytest.mark.timeout(300)
def test_four_workers_share_one_partition(
    names: Names, bootstrap_servers: str, tmp_path: Path
) -> None:
    one = _timed_run(names, bootstrap_servers, tmp_path, 1)
    four = _timed_run(names, bootstrap_servers, tmp_path, 4)

    per_worker = Counter(r["pid"] for r in four)
    assert len(per_worker) == 4, per_worker
    assert min(per_worker.values()) >= TASKS // 8, per_worker
    assert _all_busy_at_once(four) is not None, "the four workers never ran tasks at once"
    alone, shared = _elapsed(one), _elapsed(four)
    ideal = TASKS * SECONDS / CONCURRENCY
    print(
        f"{TASKS} tasks of {SECONDS}s, concurrency {CONCURRENCY}: 1 worker {alone:.1f}s "
        f"(ideal {ideal:.1f}s), 4 workers {shared:.1f}s (ideal {ideal / 4:.1f}s): "
        f"{alone / shared:.2f}x; tasks per worker {sorted(per_worker.values())}"
    )
    assert alone >= ideal
    # A quarter of one worker's time, with room for a loaded two-core machine.
    assert shared <= alone / 4 * 1.45, f"4 workers took {shared:.1f}s, 1 worker {alone:.1f}s"


def _busy(events: list[dict[str, Any]], pid: int) -> bool:
    """Whether worker ``pid`` finished 20 tasks and started one it has not finished in the
    last 0.3 s (so it still runs when the worker is killed a moment later)."""
    mine = [e for e in events if e["pid"] == pid and e["n"] >= 0]
    ended = {e["id"] for e in mine if e["event"] == "end"}
    fresh = time.time() - 0.3
    return len(ended) >= 20 and any(
        e["event"] == "start" and e["id"] not in ended and e["at"] > fresh for e in mine
    )


def _done_times(settings: Settings, topic: str) -> dict[str, float]:
    """Per task id, when its first completion entry was written (epoch seconds)."""
    first: dict[str, float] = {}
    for record in consume_all(settings, done_topic(topic)):
        task_id = record.key.decode() if isinstance(record.key, bytes) else str(record.key)
        written = json.loads(record.value or b"{}")["t"] / 1000.0
        first[task_id] = min(first.get(task_id, written), written)
    return first


@pytest.mark.timeout(240)
def test_kill_9_redelivers_unfinished_tasks_and_reruns_no_finished_one(
    names: Names, bootstrap_servers: str, settings: Settings, tmp_path: Path
) -> None:
    app_id = f"{names.app}-kill"
    # The shortest record lock the broker allows, so that locks held by the killed
    # worker run out soon (its share session expiring releases them sooner still).
    GroupConfig(settings, share_group(app_id)).set({"share.record.lock.duration.ms": "15000"})
    _, nap, _ = _sender(app_id, bootstrap_servers)
    workers = Workers(names, bootstrap_servers, tmp_path, app_id, 2)
    victim, survivor = workers.processes
    try:
        _warm_up(workers, nap)
        handles = [nap.send(n) for n in range(240)]
        wait_for(
            lambda: _busy(_events(workers.runs), victim.pid),
            60,
            "the first worker to have run 20 tasks and to be running more",
            interval=0.01,
        )
        victim.kill()
        killed_at = time.time()
        assert [h.result(timeout=120) for h in handles] == list(range(240))
        assert survivor.stop() == 0, survivor.text()[-3000:]
    finally:
        workers.kill_all()

    events = [e for e in _events(workers.runs) if e["n"] >= 0]
    started_by: dict[str, list[tuple[int, float]]] = defaultdict(list)
    ended_by: dict[str, set[int]] = defaultdict(set)
    for e in events:
        if e["event"] == "start":
            started_by[e["id"]].append((e["pid"], e["at"]))
        else:
            ended_by[e["id"]].add(e["pid"])
    in_flight = {
        i for i, starts in started_by.items()
        if any(pid == victim.pid for pid, _ in starts) and victim.pid not in ended_by[i]
    }  # fmt: skip
    assert in_flight, "the killed worker had no task in flight"
    unfinished = [i for i in in_flight if survivor.pid not in ended_by[i]]
    assert not unfinished, f"tasks in flight at the kill that the survivor never ran: {unfinished}"
    done_at = _done_times(settings, nap.topic)
    assert set(started_by) <= set(done_at)
    rerun = [
        (i, at - done_at[i])
        for i, starts in started_by.items()
        for _, at in starts
        if at > done_at[i]
    ]
    assert not rerun, (
        f"{len(rerun)} tasks ran again after their completion was written: {rerun[:3]}"
    )
    twice = {i for i, starts in started_by.items() if len(starts) > 1}
    by_victim = {i for i, s in started_by.items() if any(p == victim.pid for p, _ in s)}
    assert twice <= by_victim, {i: started_by[i] for i in twice - by_victim}
    redelivered = [max(at for _, at in started_by[i]) - killed_at for i in in_flight]
    print(
        f"kill -9 with {len(in_flight)} tasks in flight; {len(twice)} tasks ran twice; "
        f"redelivered {min(redelivered):.1f}-{max(redelivered):.1f}s after the kill"
    )


@pytest.mark.timeout(120)
def test_a_task_that_always_fails_is_dead_lettered_once_after_its_retries(
    names: Names, bootstrap_servers: str, settings: Settings, tmp_path: Path
) -> None:
    app_id = f"{names.app}-dlq"
    _, _, doomed = _sender(app_id, bootstrap_servers)
    workers = Workers(names, bootstrap_servers, tmp_path, app_id, 2)
    try:
        wait_for(workers.joined, 60, "the workers to join the share group")
        handle = doomed.send(7)
        with pytest.raises(TaskFailed) as failed:
            handle.result(timeout=60)
        assert failed.value.type == "builtins.RuntimeError"
        dead = consume_all(settings, f"{app_id}-dlq", count=1)
        workers.stop()
    finally:
        workers.kill_all()
    runs = [e for e in _events(workers.runs) if e["id"] == handle.id]
    assert len(runs) == 3, runs  # retries + 1 deliveries
    assert len(consume_all(settings, f"{app_id}-dlq")) == 1
    headers = dead[0].headers
    assert headers["millstream.task.attempts"] == b"3"
    assert headers["millstream.task.id"] == handle.id.encode()
    assert headers["millstream.error.step"] == b"task(doomed)"
    assert headers["millstream.error.type"] == b"builtins.RuntimeError"
    assert headers["millstream.source.topic"] == doomed.topic.encode()


def test_a_timeout_longer_than_the_record_lock_fails_at_startup(
    names: Names, bootstrap_servers: str
) -> None:
    app = App(f"{names.app}-lock", bootstrap_servers=bootstrap_servers)

    @app.task(mode="queue", timeout=600)
    def slow() -> None: ...

    with pytest.raises(ConfigurationError, match=r"share\.record\.lock\.duration\.ms"):
        app.worker().run(install_signal_handlers=False)
