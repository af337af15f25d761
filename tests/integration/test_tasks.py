"""The task queue (docs/tasks.md) against the real cluster: round trips, retries with
backoff, dead letters, bad records, per-key order and concurrency, idempotency, delays
and shutdown.

Workers are ``millstream worker`` processes of apps/task_app.py; the test process
sends with the same app's declarations. Every execution of a task appends a line to
the test's execution log, so the tests count runs and read their attempts, times and
order from the workers' own account, not from the runtime's counters.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from apps.task_app import BACKOFF, NAP_SECONDS, RETRIES, read_log, task_app
from support import (
    Consumed,
    Names,
    WorkerProcess,
    committed_offsets,
    consume_all,
    produce,
    record_count,
    wait_for,
)

from millstream import App, Task, TaskHandle
from millstream.config import Settings
from millstream.errors import TaskArgumentsError, TaskFailed, TaskTimeout

pytestmark = pytest.mark.timeout(180)

TASK_APP = "tests.integration.apps.task_app:app"
#: How late past its due time a delayed task or a retry may run. A wait of a second or
#: more hops through the 1 s tier, whose consumer forwards a record once its timestamp
#: + 1 s has passed, to the task topic when under a second remains; the dispatcher
#: holds it there until due. Past the due time only the last hop's latency adds: a
#: produce, a fetch (fetch.wait.max.ms is 100) and a dispatch, well under 1.5 s on a
#: loaded 2-core machine.
LATENESS = 1.5
#: The jitter a backoff may add, as a fraction of it (docs/tasks.md: up to 10%).
JITTER = 0.1

AnyTask = Task[Any, Any]

# -- fixtures and helpers --------------------------------------------------------------


class Workers:
    """Worker processes of apps/task_app.py on one test's names, each with a state
    directory of its own, logging to ``workers.log``; :meth:`stop_all` stops them."""

    def __init__(self, names: Names, bootstrap: str, execution_log: Path, directory: Path) -> None:
        self._names = names
        self._bootstrap = bootstrap
        self._execution_log = execution_log
        self._directory = directory
        self.started: list[WorkerProcess] = []

    def start(self, **env: str) -> WorkerProcess:
        """A new worker; ``env`` adds to its environment (TEST_SLEEP_MS, ...)."""
        state = self._directory / f"state-{len(self.started)}"
        environment = self._names.env(
            self._bootstrap, state, TEST_TASK_LOG=str(self._execution_log), **env
        )
        worker = WorkerProcess(TASK_APP, environment, self._directory / "workers.log")
        self.started.append(worker)
        return worker

    def stop_all(self) -> list[int]:
        """SIGTERM to every worker; their exit codes (killed after 60 s: -9)."""
        return [worker.stop(60) for worker in self.started]

    def tail(self) -> str:
        return "\n".join(worker.text()[-2000:] for worker in self.started)


@pytest.fixture
def execution_log(tmp_path: Path) -> Path:
    return tmp_path / "executions.jsonl"


@pytest.fixture
def workers(
    names: Names, bootstrap_servers: str, execution_log: Path, tmp_path: Path
) -> Iterator[Workers]:
    started = Workers(names, bootstrap_servers, execution_log, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def sender(names: Names, settings: Settings) -> Iterator[App]:
    """The test's app in this process, which sends its tasks."""
    app = task_app(names.app, settings=settings)
    try:
        yield app
    finally:
        close_task_client(app)


def close_task_client(app: App) -> None:
    """Stop the app's task client (its producer and reply consumer), when it started.
    App offers no public close; without one its reply consumer outlives the test's
    topics."""
    client = app._task_client  # noqa: SLF001 - see the docstring
    if client is not None:
        client.close()


def task(app: App, name: str) -> AnyTask:
    return app.topology.tasks[name]


def wait_until_assigned(worker: WorkerProcess, topics: dict[str, int]) -> None:
    """Wait until ``worker`` owns every partition of ``topics`` (name: partition count)."""
    wait_for(
        lambda: (
            worker.running()
            and all(worker.owned(topic) == set(range(count)) for topic, count in topics.items())
        ),
        60,
        f"worker {worker.pid} to own every partition of {', '.join(topics)}",
        observed=lambda: worker.text()[-2000:],
    )


def start_worker(workers: Workers, *tasks: AnyTask, **env: str) -> WorkerProcess:
    """A new worker, once it owns every partition of the topics of ``tasks`` (for tests
    that time what runs, or that produce to a task topic the worker creates)."""
    worker = workers.start(**env)
    wait_until_assigned(worker, {t.topic: t.partitions for t in tasks})
    return worker


def executions(execution_log: Path, task_id: str) -> list[dict[str, Any]]:
    """The logged executions of one task, in the order they were written."""
    return [line for line in read_log(execution_log) if line["id"] == task_id]


def results(handles: list[TaskHandle[Any]], timeout: float, workers: Workers) -> list[Any]:
    """The results of ``handles``, all within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    found: list[Any] = []
    for handle in handles:
        try:
            found.append(handle.result(timeout=max(deadline - time.monotonic(), 0.01)))
        except TaskTimeout:
            raise AssertionError(
                f"{len(found)} of {len(handles)} results within {timeout}s; "
                f"workers:\n{workers.tail()}"
            ) from None
    return found


def dead_letters_of(settings: Settings, names: Names, task_id: str) -> list[Consumed]:
    """The dead letters of one task in the app's DLQ, read to its end."""
    return [
        r
        for r in consume_all(settings, names.dlq)
        if r.headers.get("millstream.task.id") == task_id.encode()
    ]


def header(record: Consumed, name: str) -> str:
    assert name in record.headers, f"no header {name} among {sorted(record.headers)}"
    return record.headers[name].decode()


# -- round trips -------------------------------------------------------------------------


def test_a_sent_task_returns_its_value(sender: App, workers: Workers, execution_log: Path) -> None:
    # Sent before any worker ran: the first send of the app creates its topics.
    handle = task(sender, "add").send(2, 3, scale=10)
    workers.start()

    assert handle.result(timeout=60) == 50
    assert [run["task"] for run in executions(execution_log, handle.id)] == ["add"]


def test_an_async_task_runs_and_knows_its_id(
    sender: App, workers: Workers, execution_log: Path
) -> None:
    whoami = task(sender, "whoami")
    assert whoami.is_async
    start_worker(workers, whoami)
    handle = whoami.send("async")

    assert handle.result(timeout=60) == {"id": handle.id, "tag": "async"}
    assert len(executions(execution_log, handle.id)) == 1


def test_send_task_by_name_without_the_function(
    names: Names, settings: Settings, workers: Workers, execution_log: Path
) -> None:
    start_worker(workers, task(task_app(names.app, settings=settings), "add"))
    # An App that declares no task: the name and the arguments are all it sends.
    bare = App(names.app, settings=settings)
    try:
        handle = bare.send_task("add", args=[2, 3], kwargs={"scale": 10})
        assert handle.result(timeout=60) == 50
    finally:
        close_task_client(bare)
    assert [run["task"] for run in executions(execution_log, handle.id)] == ["add"]


def test_a_raising_task_fails_with_the_remote_error(sender: App, workers: Workers) -> None:
    explode = task(sender, "explode")
    start_worker(workers, explode)
    handle = explode.send("card 42 declined")

    with pytest.raises(TaskFailed) as failed:
        handle.result(timeout=60)
    error = failed.value
    assert (error.task_id, error.task) == (handle.id, "explode")
    assert (error.type, error.message) == ("builtins.ValueError", "card 42 declined")
    assert ", in explode\n" in error.traceback, error.traceback
    assert error.traceback.rstrip().endswith("ValueError: card 42 declined"), error.traceback


def test_result_times_out_when_no_worker_runs(sender: App) -> None:
    handle = task(sender, "record").send("nobody is listening")
    handle.sent(timeout=30)  # Kafka has it: what is missing below is a worker

    started = time.monotonic()
    with pytest.raises(TaskTimeout):
        handle.result(timeout=0.5)
    waited = time.monotonic() - started
    assert 0.5 <= waited < 2.0, f"result(timeout=0.5) returned after {waited:.2f}s"


def test_arguments_that_cannot_be_sent_fail_at_send(sender: App, settings: Settings) -> None:
    record, add = task(sender, "record"), task(sender, "add")

    with pytest.raises(TaskArgumentsError, match="JSON"):
        record.send(object())
    with pytest.raises(TaskArgumentsError, match="missing a required argument: 'b'"):
        add.send(1)
    with pytest.raises(TaskArgumentsError, match="too many positional arguments"):
        add.send(1, 2, 3)
    with pytest.raises(TaskArgumentsError, match="unexpected keyword argument 'colour'"):
        add.send(1, 2, colour="red")
    with pytest.raises(TaskArgumentsError, match="missing a required argument: 'b'"):
        sender.send_task("add", args=[1])

    # The refused sends published nothing: the one good send after them is all there is.
    record.send("valid").sent(timeout=30)
    add.send(1, 2).sent(timeout=30)
    assert record_count(settings, record.topic) == 1
    assert record_count(settings, add.topic) == 1


# -- retries and dead letters ----------------------------------------------------------


def test_a_failing_task_is_retried_with_backoff_then_dead_lettered_once(
    names: Names, settings: Settings, sender: App, workers: Workers, execution_log: Path
) -> None:
    """``retries=3, backoff=1.0``: 4 runs, 1 s, 2 s and 4 s apart at least (jitter only
    adds) and at most that + 10% jitter + LATENESS; then one dead letter with the task's
    headers, and the sender's ``result()`` raises TaskFailed."""
    always_fails = task(sender, "always_fails")
    start_worker(workers, always_fails)
    handle = always_fails.send("flaky")

    with pytest.raises(TaskFailed) as failed:
        handle.result(timeout=60)
    assert failed.value.type == "builtins.RuntimeError"
    assert failed.value.message == f"flaky failed on attempt {RETRIES + 1}"
    assert workers.stop_all() == [0]

    runs = executions(execution_log, handle.id)
    assert [run["attempt"] for run in runs] == list(range(RETRIES + 1)), runs
    gaps = [later["time"] - earlier["time"] for earlier, later in pairwise(runs)]
    print(f"gaps between attempts: {', '.join(f'{gap:.3f}s' for gap in gaps)}")
    for attempt, gap in enumerate(gaps, start=1):
        backoff = BACKOFF * 2 ** (attempt - 1)
        assert gap >= backoff, f"attempt {attempt + 1} ran {gap:.3f}s after the last (<{backoff}s)"
        latest = backoff * (1 + JITTER) + LATENESS
        assert gap <= latest, f"attempt {attempt + 1} ran {gap:.3f}s after the last (>{latest}s)"

    letters = dead_letters_of(settings, names, handle.id)
    assert len(letters) == 1, letters
    letter = letters[0]
    assert orjson.loads(letter.value or b"")["id"] == handle.id
    assert (
        header(letter, "millstream.error") == f"RuntimeError: flaky failed on attempt {RETRIES + 1}"
    )
    assert header(letter, "millstream.error.type") == "builtins.RuntimeError"
    assert header(letter, "millstream.task.name") == "always_fails"
    assert header(letter, "millstream.task.attempts") == str(RETRIES + 1)
    assert ", in always_fails\n" in header(letter, "millstream.error.traceback")


def test_an_error_outside_retry_on_is_dead_lettered_after_one_run(
    names: Names, settings: Settings, sender: App, workers: Workers, execution_log: Path
) -> None:
    not_retried = task(sender, "not_retried")
    start_worker(workers, not_retried)
    handle = not_retried.send("fatal")

    with pytest.raises(TaskFailed) as failed:
        handle.result(timeout=60)
    assert (failed.value.type, failed.value.message) == (
        "builtins.ValueError",
        "fatal is not worth retrying",
    )
    assert workers.stop_all() == [0]

    assert len(executions(execution_log, handle.id)) == 1
    letters = dead_letters_of(settings, names, handle.id)
    assert len(letters) == 1, letters
    assert header(letters[0], "millstream.error") == "ValueError: fatal is not worth retrying"
    assert header(letters[0], "millstream.error.type") == "builtins.ValueError"
    assert header(letters[0], "millstream.task.attempts") == "1"


def test_bad_task_records_are_dead_lettered_and_the_worker_goes_on(
    names: Names, settings: Settings, sender: App, workers: Workers, execution_log: Path
) -> None:
    record = task(sender, "record")
    start_worker(workers, record)
    unknown = {"id": "bad-unknown", "task": "no_such_task", "args": [], "kwargs": {}}
    unbound = {"id": "bad-unbound", "task": "record", "args": [], "kwargs": {"colour": "red"}}
    bad = [b"{not json", orjson.dumps(unknown), orjson.dumps(unbound)]
    # One key: the bad records and the good task after them share a partition.
    produce(settings, record.topic, [(b"same-key", value) for value in bad])
    handle = record.options(key="same-key").send("after the bad ones")

    assert handle.result(timeout=60)["tag"] == "after the bad ones"
    assert workers.stop_all() == [0]

    letters = consume_all(settings, names.dlq)
    assert [letter.value for letter in letters] == bad
    not_json, not_found, not_bound = letters
    assert header(not_json, "millstream.error").startswith(
        "SerializationError: a task record must be JSON"
    )
    assert header(not_json, "millstream.error.type") == "millstream.errors.SerializationError"
    assert header(not_found, "millstream.error") == (
        f"TaskNotFoundError: no task 'no_such_task' in app '{names.app}'"
    )
    assert header(not_found, "millstream.task.id") == "bad-unknown"
    assert header(not_bound, "millstream.error").startswith("TaskArgumentsError: task 'record'")
    assert "'tag'" in header(not_bound, "millstream.error")
    assert header(not_bound, "millstream.task.id") == "bad-unbound"
    assert not executions(execution_log, "bad-unbound")
    assert len(executions(execution_log, handle.id)) == 1

    # The good task came after the bad ones in their partition: the worker went past them.
    sources = {
        (header(letter, "millstream.source.partition"), header(letter, "millstream.source.offset"))
        for letter in letters
    }
    assert len({partition for partition, _ in sources}) == 1
    good = [r for r in consume_all(settings, record.topic) if r.value not in bad]
    assert len(good) == 1
    assert str(good[0].partition) == next(iter(sources))[0]
    assert good[0].offset > max(int(offset) for _, offset in sources)


# -- order and concurrency ---------------------------------------------------------------

KEYS = 50


def send_over_keys(fn: AnyTask, count: int) -> list[TaskHandle[Any]]:
    """``count`` tasks over KEYS keys, round robin; each key's sequence numbers count up."""
    return [
        fn.options(key=f"key-{i % KEYS}").send(f"key-{i % KEYS}", i // KEYS) for i in range(count)
    ]


def check_per_key_order(execution_log: Path, name: str, count: int) -> None:
    """Each of ``count`` tasks ran once; per key in sequence order, one at a time."""
    runs = [line for line in read_log(execution_log) if line["task"] == name]
    assert len(runs) == count, f"{len(runs)} executions of {count} tasks"
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_key[run["key"]].append(run)
    assert len(by_key) == KEYS
    for key, key_runs in by_key.items():
        key_runs.sort(key=lambda run: run["start"])
        sequence = [run["seq"] for run in key_runs]
        assert sequence == list(range(len(key_runs))), f"{key} ran in the order {sequence}"
        overlaps = [b["seq"] for a, b in pairwise(key_runs) if b["start"] < a["end"]]
        assert not overlaps, f"{key}: tasks {overlaps} started before the previous one ended"


def most_at_once(execution_log: Path, name: str) -> int:
    """The most executions of ``name`` that were running at one moment."""
    events = []
    for line in read_log(execution_log):
        if line["task"] == name:
            events += [(line["start"], 1), (line["end"], -1)]
    running = most = 0
    for _, change in sorted(events):  # at a tie an end (-1) sorts before a start
        running += change
        most = max(most, running)
    return most


def timed_run(fn: AnyTask, count: int, workers: Workers) -> float:
    """Seconds from the first send to the last result of ``count`` tasks over KEYS keys."""
    started = time.monotonic()
    handles = send_over_keys(fn, count)
    results(handles, 120, workers)
    return time.monotonic() - started


def test_per_key_order_holds_over_10000_tasks_in_one_partition(
    sender: App, workers: Workers, execution_log: Path
) -> None:
    parallel = task(sender, "ordered_parallel")
    assert (parallel.partitions, parallel.concurrency) == (1, 16)
    start_worker(workers, parallel, TEST_SLEEP_MS="2")

    elapsed = timed_run(parallel, 10_000, workers)
    print(f"10,000 tasks of 2 ms over {KEYS} keys at concurrency 16: {elapsed:.2f}s")
    assert workers.stop_all() == [0]
    check_per_key_order(execution_log, "ordered_parallel", 10_000)


def test_no_more_tasks_run_at_once_than_their_concurrency(
    sender: App, workers: Workers, execution_log: Path
) -> None:
    serial, parallel = task(sender, "ordered_serial"), task(sender, "ordered_parallel")
    start_worker(workers, serial, parallel, TEST_SLEEP_MS="10")

    timed_run(serial, 200, workers)
    timed_run(parallel, 1000, workers)
    assert workers.stop_all() == [0]
    at_once = {
        name: most_at_once(execution_log, name) for name in ("ordered_serial", "ordered_parallel")
    }
    print(f"most tasks running at once: {at_once}")
    assert at_once["ordered_serial"] == 1, at_once
    assert at_once["ordered_parallel"] <= 16, at_once


def test_concurrency_16_runs_sleep_bound_tasks_10x_faster_than_concurrency_1(
    sender: App, workers: Workers, execution_log: Path
) -> None:
    """10,000 tasks that sleep 20 ms, over 50 keys in one partition, at concurrency 16,
    against 1,000 of them at concurrency 1 (10,000 would take over 200 s there), compared
    by time per task, each run timed from its first send to its last result."""
    serial, parallel = task(sender, "ordered_serial"), task(sender, "ordered_parallel")
    start_worker(workers, serial, parallel, TEST_SLEEP_MS="20")

    wide = timed_run(parallel, 10_000, workers) / 10_000
    narrow = timed_run(serial, 1_000, workers) / 1_000
    assert workers.stop_all() == [0]
    check_per_key_order(execution_log, "ordered_parallel", 10_000)
    check_per_key_order(execution_log, "ordered_serial", 1_000)
    speedup = narrow / wide
    print(
        f"per task: {wide * 1000:.3f} ms at concurrency 16, {narrow * 1000:.3f} ms at "
        f"concurrency 1: {speedup:.1f}x"
    )
    assert speedup >= 10, f"concurrency 16 is only {speedup:.1f}x faster than 1"


# -- idempotency and delays ----------------------------------------------------------------


def test_a_task_id_sent_twice_runs_once(sender: App, workers: Workers, execution_log: Path) -> None:
    record = task(sender, "record")
    task_id = f"once-{uuid.uuid4().hex}"
    start_worker(workers, record)

    first = record.options(task_id=task_id).send("first")
    recorded = first.result(timeout=60)
    second = record.options(task_id=task_id).send("second")
    assert second.id == first.id == task_id
    assert second.result(timeout=60) == recorded
    assert recorded["tag"] == "first"
    assert workers.stop_all() == [0]

    assert [run["tag"] for run in executions(execution_log, task_id)] == ["first"]


def run_delayed(
    sender: App, workers: Workers, execution_log: Path, delay: float | timedelta
) -> tuple[float, float]:
    """Send ``record`` with ``delay`` to a running worker; (when it was sent, when it ran),
    in epoch seconds, once the worker stopped and the task ran exactly once."""
    record = task(sender, "record")
    wait = delay.total_seconds() if isinstance(delay, timedelta) else delay
    start_worker(workers, record)

    # Due times are whole milliseconds: compare in them.
    sent = int(time.time() * 1000) / 1000
    handle = record.options(delay=delay).send("delayed")
    assert handle.result(timeout=wait + 60)["tag"] == "delayed"
    assert workers.stop_all() == [0]
    runs = executions(execution_log, handle.id)
    assert len(runs) == 1, runs
    return sent, runs[0]["time"]


def test_a_short_delay_runs_once_and_not_before_it_is_due(
    sender: App, workers: Workers, execution_log: Path
) -> None:
    sent, ran = run_delayed(sender, workers, execution_log, 3.0)
    print(f"3 s delay ran {ran - sent:.3f}s after the send")
    assert ran >= sent + 3.0, f"ran {ran - sent:.3f}s after the send"
    assert ran <= sent + 3.0 + LATENESS, f"ran {ran - sent:.3f}s after the send"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_two_minute_delay_runs_once_and_not_before_it_is_due(
    sender: App, workers: Workers, execution_log: Path
) -> None:
    sent, ran = run_delayed(sender, workers, execution_log, timedelta(minutes=2))
    print(f"2 min delay ran {ran - sent:.3f}s after the send")
    assert ran >= sent + 120.0, f"ran {ran - sent:.3f}s after the send"
    assert ran <= sent + 120.0 + LATENESS, f"ran {ran - sent:.3f}s after the send"


# -- shutdown ----------------------------------------------------------------------------


def test_sigterm_lets_running_tasks_finish_and_the_rest_run_on_the_next_worker(
    names: Names, settings: Settings, sender: App, workers: Workers, execution_log: Path
) -> None:
    """Four keys with three 2 s naps each: one task per key runs at a time, so four run
    when the first worker gets SIGTERM. It lets them finish (their replies arrive with no
    other worker running), commits past them and exits 0; the next worker runs the other
    eight, and every task ran exactly once."""
    nap = task(sender, "nap")
    first = start_worker(workers, nap)
    keys = [f"key-{k}" for k in range(4)]
    handles = [nap.options(key=key).send(f"{key}/{n}") for n in range(3) for key in keys]
    heads, rest = handles[:4], handles[4:]

    def started_by(worker: WorkerProcess) -> set[str]:
        lines = read_log(execution_log)
        return {x["id"] for x in lines if x.get("phase") == "start" and x["pid"] == worker.pid}

    wait_for(lambda: len(started_by(first)) >= 4, 60, "four naps to start")
    first.terminate()
    assert first.wait(NAP_SECONDS + 20) == 0, first.text()[-3000:]
    assert started_by(first) == {h.id for h in heads}
    assert [h.result(timeout=10) for h in heads] == [f"{key}/0" for key in keys]
    # Each partition's commit is its lowest task not run: the heads were all sent first.
    placed = {r.json()["id"]: (r.partition, r.offset) for r in consume_all(settings, nap.topic)}
    lowest_not_run: dict[int, int] = {}
    for h in rest:
        partition, offset = placed[h.id]
        lowest_not_run[partition] = min(offset, lowest_not_run.get(partition, offset))
    committed = committed_offsets(settings, names.app, nap.topic, nap.partitions)
    assert {p: committed[p] for p in lowest_not_run} == lowest_not_run, committed

    workers.start()  # no wait: the rest must run on it however long it takes to join
    assert results(rest, 60, workers) == [f"{key}/{n}" for n in (1, 2) for key in keys]
    assert workers.stop_all() == [0, 0]
    lines = read_log(execution_log)
    for phase in ("start", "end"):
        ids = [x["id"] for x in lines if x.get("phase") == phase]
        assert sorted(ids) == sorted(h.id for h in handles), f"{phase}: {ids}"
