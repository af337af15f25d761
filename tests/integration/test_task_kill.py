"""kill -9 of a task worker: no task is lost, and only tasks that had not finished at
the last checkpoint run again.

A worker runs 300 tasks of 0.2 s over 30 keys (commit every 0.5 s) and is killed
with SIGKILL partway. The group's commit then says, per partition, the lowest
unfinished offset and the finished offsets above it (the commit metadata). A new
worker finishes the rest. Every execution is logged with its task id, so the test
checks: every task ran; no task the commit records as finished ran again; every task
that ran twice had finished (or been running) on the killed worker after its last
checkpoint. With exactly-once, the reply topic also holds exactly one reply per task:
the replies of the killed worker's open transaction were aborted with it.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from support import Names, WorkerProcess, consume_all, wait_for

from millstream import App
from millstream.config import Settings
from millstream.kafka import TopicPartition, make_consumer
from millstream.processors.completions import Completions

TASKS = 300
KEYS = 30
PARTITIONS = 2
APP = "tests.integration.apps.killed_tasks:app"


def _executions(log: Path) -> list[dict[str, float]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _committed_done(settings: Settings, group: str, topic: str) -> dict[int, Completions]:
    """Per partition, the completions the group's last commit records."""
    consumer = make_consumer(settings, group)
    try:
        wanted = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        answers = consumer.committed(wanted, timeout=10)
    finally:
        consumer.close()
    return {tp.partition: Completions.from_commit(max(tp.offset, 0), tp.metadata) for tp in answers}


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_kill_9_loses_no_task_and_reruns_only_unfinished_ones(
    names: Names, bootstrap_servers: str, settings: Settings, tmp_path: Path, guarantee: str
) -> None:
    log, runs = tmp_path / "worker.log", tmp_path / "runs.jsonl"
    env = names.env(
        bootstrap_servers, tmp_path / "state", TEST_TASK_LOG=str(runs), TEST_GUARANTEE=guarantee
    )
    app = App(names.app, bootstrap_servers=bootstrap_servers)

    @app.task(partitions=PARTITIONS)
    def work(n: int) -> int:  # runs on the workers only
        return n

    topic = work.topic
    first = WorkerProcess(APP, env, log)
    second: WorkerProcess | None = None
    try:
        wait_for(
            lambda: first.running() and len(first.owned(topic)) == PARTITIONS,
            60,
            "the first worker to own the task partitions",
        )
        handles = [work.options(key=f"k{n % KEYS}").send(n) for n in range(TASKS)]
        wait_for(
            lambda: first.running() and len(_executions(runs)) >= TASKS // 3,
            60,
            "a third of the tasks to finish",
            interval=0.02,
        )
        first.kill()
        killed_at = time.time()
        done = _committed_done(settings, names.app, topic)

        second = WorkerProcess(APP, env, log)
        results = [h.result(timeout=120) for h in handles]
        assert results == list(range(TASKS))
        assert second.stop() == 0, second.text()[-3000:]
    finally:
        first.kill()
        if second is not None:
            second.kill()

    ids_at = {
        (r.partition, r.offset): json.loads(r.value)["id"] for r in consume_all(settings, topic)
    }
    assert len(ids_at) == TASKS
    committed_ids = {task_id for (p, offset), task_id in ids_at.items() if done[p].is_done(offset)}
    executions = _executions(runs)
    runs_of = Counter(e["id"] for e in executions)
    by_first = {e["id"] for e in executions if e["pid"] == first.pid}
    pids_of: dict[str, list[int]] = defaultdict(list)
    for e in executions:
        pids_of[e["id"]].append(int(e["pid"]))

    missing = set(ids_at.values()) - set(runs_of)
    assert not missing, f"{len(missing)} tasks never ran"
    assert committed_ids, "the worker was killed before its first checkpoint: nothing to check"
    again = {i for i in committed_ids if runs_of[i] > 1}
    assert not again, f"{len(again)} tasks the commit records as finished ran again"
    assert committed_ids <= by_first
    twice = {i for i, n in runs_of.items() if n > 1}
    # A task runs twice only if the killed worker finished it after its last checkpoint.
    assert twice <= by_first - committed_ids
    assert all(n <= 2 for n in runs_of.values()), runs_of.most_common(3)
    if guarantee == "exactly_once":
        replies = Counter(r.key for r in consume_all(settings, f"{names.app}-replies"))
        assert set(replies.values()) == {1}, replies.most_common(3)
        assert len(replies) == TASKS
    finished_late = [
        e for e in executions if e["pid"] == first.pid and e["id"] not in committed_ids
    ]
    print(
        f"kill -9 after {len(by_first)} of {TASKS} tasks finished; the last commit recorded "
        f"{len(committed_ids)} (metadata: "
        + ", ".join(f"p{p} {c.committable_offset}+{c.pending_done}" for p, c in done.items())
        + f"); {len(finished_late)} finished after it ran again: {len(twice)} duplicates, "
        f"killed {killed_at - min(e['start'] for e in executions):.1f}s into the run"
    )
