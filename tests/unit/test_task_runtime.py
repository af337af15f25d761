"""The task runtime without a broker: task records in, replies, retries, dead letters
and completions out, through in-memory topics (the test driver's)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from millstream import App, current_task
from millstream.config import load_settings
from millstream.kafka import TopicPartition
from millstream.processors.collector import RecordCollector
from millstream.processors.partitions import OwnedPartitions
from millstream.processors.rows import deserialize
from millstream.processors.tasks.delays import DelayPartition
from millstream.processors.tasks.envelope import Delivery, TaskEnvelope
from millstream.processors.tasks.partition import TaskPartition
from millstream.processors.tasks.runtime import TaskRuntime
from millstream.processors.tasks.wiring import task_steps
from millstream.processors.worker_config import WorkerStats
from millstream.testing.driver import _MemoryProducer, _MemoryState, _Message, _Topics

REPLIES = ("shop-replies", 3)


class Harness:
    """A worker's task side over in-memory topics: feed records, tick until done."""

    def __init__(self, app: App) -> None:
        topology = app.topology
        self.topology = topology
        self.stats = WorkerStats()
        self.topics = _Topics(topology.topics, topology.partitions_like)
        self.collector = RecordCollector(self.stats, topology.dlq_topic, topology.late_topic)
        self.collector.attach(_MemoryProducer(self._append))  # type: ignore[arg-type]
        state = _MemoryState(topology.app_id, topology.store_specs())
        self.owned = OwnedPartitions(topology, state)
        self.runtime = TaskRuntime(
            app.app_id, task_steps(topology), self.collector, exactly_once=False
        )
        self.runtime.attach(None, self.owned)
        for roots in topology.sources.values():
            for root in roots:
                root.bind(self.collector)
        self._fed: dict[str, int] = {}

    def _append(
        self, topic: str, partition: int, key: Any, value: Any, ts: int, headers: Any
    ) -> None:
        self.topics.append(topic, partition, key, value, ts or int(time.time() * 1000), headers)

    def send(
        self,
        task: str,
        *args: Any,
        task_id: str = "t-1",
        key: bytes | None = None,
        delivery: Delivery | None = None,
        raw: bytes | None = None,
        topic: str | None = None,
    ) -> None:
        envelope = TaskEnvelope(task_id, task, list(args), {}, REPLIES)
        value = raw if raw is not None else envelope.encode()
        headers = (delivery or Delivery()).headers() or None
        self._append(topic or f"shop-task-{task}", -1, key or task_id.encode(), value, 0, headers)

    def feed(self, topic: str) -> None:
        """Hand the records of ``topic`` not seen yet to the runtime, as the worker does."""
        log = self.topics.log(topic)
        start = self._fed.get(topic, 0)
        self._fed[topic] = len(log)
        for message in log[start:]:
            key = (message.topic(), message.partition())
            if key not in self.owned.assigned:
                self.owned.take([TopicPartition(*key)])
            part = self.owned.get(*key)
            part.processed(message.offset() + 1)
            rows = deserialize(self.topology.topics[topic], [message], self.collector.dead_letter)  # type: ignore[list-item]
            for root in self.topology.sources[topic]:
                root.process(rows, part)

    def run(self, until: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.runtime.tick()
            if until():
                return
            assert time.monotonic() < deadline, "the runtime did not get there in time"
            self.runtime.wait(0.01)

    def records(self, topic: str) -> list[_Message]:
        return self.topics.log(topic)

    def replies(self) -> list[dict[str, Any]]:
        return [orjson.loads(m.value() or b"") for m in self.records(REPLIES[0])]

    def headers(self, message: _Message) -> dict[str, str]:
        return {k: v.decode() for k, v in message.headers() or []}

    def partition(self, topic: str) -> TaskPartition:
        parts = [p for (t, _), p in self.owned.assigned.items() if t == topic]
        assert len(parts) == 1 and isinstance(parts[0], TaskPartition)
        return parts[0]


@pytest.fixture
def app(tmp_path: Any) -> Iterator[App]:
    yield App("shop", settings=load_settings(local_dir=tmp_path))


def test_a_task_runs_and_its_reply_goes_to_the_sender_partition(app: App) -> None:
    @app.task(partitions=1)
    def add(a: int, b: int) -> dict[str, Any]:
        return {"sum": a + b, "id": current_task().id}

    h = Harness(app)
    h.send("add", 2, 3, task_id="t-9")
    h.feed("shop-task-add")
    h.run(lambda: bool(h.replies()))
    [reply] = h.records("shop-replies")
    assert reply.partition() == 3 and reply.key() == b"t-9"
    assert orjson.loads(reply.value() or b"") == {
        "id": "t-9",
        "task": "add",
        "status": "succeeded",
        "result": {"sum": 5, "id": "t-9"},
    }
    part = h.partition("shop-task-add")
    assert part.commit_point() == (1, "")
    assert h.runtime.metrics.count("add", "succeeded") == 1


def test_tasks_of_one_key_run_in_order_and_other_keys_alongside(app: App) -> None:
    running: dict[str, int] = {}
    most: dict[str, int] = {}
    order: list[tuple[str, int]] = []
    lock = threading.Lock()

    @app.task(partitions=1, concurrency=4)
    def step(key: str, n: int) -> None:
        with lock:
            running[key] = running.get(key, 0) + 1
            most[key] = max(most.get(key, 0), running[key])
            most["all"] = max(most.get("all", 0), sum(running.values()))
        time.sleep(0.02)
        with lock:
            running[key] -= 1
            order.append((key, n))

    h = Harness(app)
    for n in range(5):
        for key in "abcdef":
            h.send("step", key, n, task_id=f"{key}{n}", key=key.encode())
    h.feed("shop-task-step")
    h.run(lambda: len(h.replies()) == 30)
    for key in "abcdef":
        assert [n for k, n in order if k == key] == list(range(5))
        assert most[key] == 1
    assert most["all"] == 4  # six keys ready, four slots


def test_a_failed_attempt_is_retried_through_a_delay_tier(app: App) -> None:
    @app.task(partitions=1, retries=2, backoff=5)
    def flaky() -> None:
        raise ValueError("not yet")

    h = Harness(app)
    h.send("flaky", task_id="t-1")
    h.feed("shop-task-flaky")
    h.run(lambda: bool(h.records("shop-delay-1s")))
    [retry] = h.records("shop-delay-1s")
    headers = h.headers(retry)
    assert headers["millstream.task.attempts"] == "1"
    assert headers["millstream.task.topic"] == "shop-task-flaky"
    wait = int(headers["millstream.task.due"]) - retry.timestamp()[1]
    assert 5000 <= wait <= 5500 + 50  # the backoff, plus at most 10% jitter
    assert not h.replies() and not h.records("shop-dlq")
    assert h.partition("shop-task-flaky").commit_point() == (1, "")


def test_the_last_attempt_goes_to_the_dead_letter_topic_with_its_story(app: App) -> None:
    @app.task(partitions=1, retries=2)
    def broken() -> None:
        raise ValueError("still broken")

    h = Harness(app)
    h.send("broken", task_id="t-7", delivery=Delivery(attempts=2, first_failure=1234))
    h.feed("shop-task-broken")
    h.run(lambda: bool(h.replies()))
    [dead] = h.records("shop-dlq")
    headers = h.headers(dead)
    assert headers["millstream.error"] == "ValueError: still broken"
    assert headers["millstream.error.type"] == "builtins.ValueError"
    assert headers["millstream.task.id"] == "t-7"
    assert headers["millstream.task.name"] == "broken"
    assert headers["millstream.task.attempts"] == "3"
    assert headers["millstream.source.topic"] == "shop-task-broken"
    assert "in broken" in headers["millstream.error.traceback"]
    [reply] = h.replies()
    assert reply["status"] == "failed" and reply["error"]["type"] == "builtins.ValueError"
    assert h.stats.dead_letters == 1


def test_an_error_outside_retry_on_is_not_retried(app: App) -> None:
    @app.task(partitions=1, retries=5, retry_on=(TimeoutError,))
    def picky() -> None:
        raise KeyError("no")

    h = Harness(app)
    h.send("picky")
    h.feed("shop-task-picky")
    h.run(lambda: bool(h.replies()))
    assert len(h.records("shop-dlq")) == 1
    assert not any(h.records(f"shop-delay-{t}") for t in ("1s", "10s", "1m"))


@pytest.mark.parametrize(
    ("task", "raw", "args", "reason"),
    [
        ("echo", b"{not json", (), "SerializationError: a task record must be JSON"),
        ("nope", None, (), "TaskNotFoundError: no task 'nope'"),
        ("echo", None, (1, 2), "TaskArgumentsError: task 'echo': too many positional"),
    ],
)
def test_bad_task_records_are_dead_lettered_and_the_next_runs(
    app: App, task: str, raw: bytes | None, args: tuple[Any, ...], reason: str
) -> None:
    @app.task(partitions=1)
    def echo(x: int) -> int:
        return x

    h = Harness(app)
    h.send(task, *args, task_id="bad", raw=raw, topic="shop-task-echo")
    h.send("echo", 5, task_id="good", topic="shop-task-echo")
    h.feed("shop-task-echo")
    h.run(lambda: any(r.get("result") == 5 for r in h.replies()))
    [dead] = h.records("shop-dlq")
    assert h.headers(dead)["millstream.error"].startswith(reason)
    assert h.partition("shop-task-echo").commit_point() == (2, "")


def test_a_task_id_finished_already_is_not_run_again(app: App) -> None:
    calls: list[int] = []

    @app.task(partitions=1)
    def once(x: int) -> int:
        calls.append(x)
        return x * 10

    h = Harness(app)
    h.send("once", 1, task_id="same")
    h.feed("shop-task-once")
    h.run(lambda: len(h.replies()) == 1)
    h.send("once", 2, task_id="same")
    h.feed("shop-task-once")
    h.run(lambda: len(h.replies()) == 2)
    assert calls == [1]
    assert [r["result"] for r in h.replies()] == [10, 10]
    # A retry of it (a later attempt) does run.
    h.send("once", 3, task_id="same", delivery=Delivery(attempts=1))
    h.feed("shop-task-once")
    h.run(lambda: len(h.replies()) == 3)
    assert calls == [1, 3]


def test_a_sync_task_past_its_timeout_fails_its_attempt_and_keeps_its_slot(app: App) -> None:
    release = threading.Event()

    @app.task(partitions=1, timeout=0.05, retries=1, backoff=5, concurrency=1)
    def slow(x: int) -> int:
        release.wait(5)
        return x

    h = Harness(app)
    h.send("slow", 1, task_id="a")
    h.send("slow", 2, task_id="b")
    h.feed("shop-task-slow")
    h.run(lambda: bool(h.records("shop-delay-1s")))
    part = h.partition("shop-task-slow")
    assert h.headers(h.records("shop-delay-1s")[0])["millstream.task.attempts"] == "1"
    assert len(part.running) == 1  # the slot stays busy: "b" waits
    release.set()
    h.run(lambda: bool(h.replies()))
    assert [r["id"] for r in h.replies()] == ["b"]


def test_an_async_task_past_its_timeout_is_cancelled(app: App) -> None:
    import asyncio

    cancelled = threading.Event()

    @app.task(partitions=1, timeout=0.05, retries=0)
    async def sleepy() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    h = Harness(app)
    h.send("sleepy")
    h.feed("shop-task-sleepy")
    h.run(lambda: bool(h.replies()))
    assert cancelled.is_set()
    assert h.replies()[0]["error"]["type"] == "millstream.errors.TaskTimeout"


def test_a_delay_tier_forwards_what_is_due_and_holds_the_rest(app: App) -> None:
    @app.task(partitions=1)
    def later() -> None: ...

    h = Harness(app)
    now = int(time.time() * 1000)
    due_now = Delivery(due=now - 10, target="shop-task-later").headers()
    due_soon = Delivery(due=now + 60_000, target="shop-task-later").headers()
    tier = "shop-delay-10s"
    envelope = TaskEnvelope("x", "later", [], {}).encode()
    h.topics.append(tier, 0, b"k", envelope, now - 11_000, due_now)
    h.topics.append(tier, 0, b"k", envelope, now - 1_000, due_soon)
    h.topics.append(tier, 0, b"k", envelope, now - 11_000, due_now)
    h.feed(tier)
    [forwarded] = h.records("shop-task-later")
    assert "millstream.task.topic" not in h.headers(forwarded)
    part = h.owned.get(tier, 0)
    assert isinstance(part, DelayPartition)
    assert len(part.held) == 2
    assert part.committable_offset() == 1  # the first record still waiting
    h.runtime.tick()
    assert len(h.records("shop-task-later")) == 1


class Pauses:
    """Records what the runtime pauses and resumes, as a consumer would apply it."""

    def __init__(self) -> None:
        self.paused: set[tuple[str, int]] = set()

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {(tp.topic, tp.partition) for tp in partitions}


def test_a_partition_with_too_many_tasks_in_memory_pauses_until_half_are_done(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    import millstream.processors.tasks.partition as partition_module
    import millstream.processors.tasks.runtime as runtime_module

    monkeypatch.setattr(partition_module, "MAX_BUFFERED", 10)
    monkeypatch.setattr(runtime_module, "MAX_BUFFERED", 10)
    gate = threading.Event()

    @app.task(partitions=1, concurrency=1)
    def gated(n: int) -> int:
        gate.wait(5)
        return n

    h = Harness(app)
    pauses = Pauses()
    h.runtime.attach(pauses, h.owned)  # type: ignore[arg-type]
    for n in range(12):
        h.send("gated", n, task_id=f"t{n}")
    h.feed("shop-task-gated")
    h.runtime.tick()
    assert pauses.paused == {("shop-task-gated", 0)}
    gate.set()
    h.run(lambda: len(h.replies()) >= 8)  # four left in memory: under half of ten
    assert not pauses.paused
    h.run(lambda: len(h.replies()) == 12)
    families = {f.name: f for f in h.runtime.metrics.collect()}
    [succeeded] = families["millstream_tasks_succeeded"].samples[:1]
    assert succeeded.labels == {"app_id": "shop", "task": "gated"} and succeeded.value == 12


def test_a_task_not_due_for_a_while_goes_back_through_the_delay_tiers(app: App) -> None:
    @app.task(partitions=1)
    def later() -> None: ...

    h = Harness(app)
    due = int(time.time() * 1000) + 90_000
    h.send("later", task_id="t-1", delivery=Delivery(due=due))
    h.feed("shop-task-later")
    [waiting] = h.records("shop-delay-1m")
    headers = h.headers(waiting)
    assert headers["millstream.task.due"] == str(due)
    assert headers["millstream.task.topic"] == "shop-task-later"
    assert h.partition("shop-task-later").commit_point() == (1, "")
