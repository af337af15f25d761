"""Chaos: exactly-once survives kill -9 of workers and the loss of a broker.

A private 3-node cluster (replication 3, min ISR 2) on reserved ports, three worker
processes of ``apps/eos.py`` (each with its own state directory, so a restarted
worker reuses its predecessor's transactional id and fences it at once), input
produced while the workers run, and meanwhile: a worker killed with SIGKILL and
restarted every few seconds, and once a broker killed with SIGKILL and started
again. Afterwards a read_committed reader must see every enriched record exactly
once and every window count exactly as the oracle says. The same scenario under
at-least-once shows what exactly-once saves: duplicates, but nothing missing. A
third run kills no worker but the broker coordinating the consumer group, while the
workers commit: librdkafka can block for ever then, and the workers must not.

A worker that exits without being killed is restarted, as a process supervisor
would, so that the outputs still show whether exactly-once held; the test fails
afterwards all the same, because a worker must ride out a broker's restart.

Every chaos event is logged with a timestamp (``chaos.log``); every worker writes
its log to ``w<i>.log`` in the test's tmp_path, and their tails are printed when
the test fails. The brokers' logs are kept next to the cluster's (wiped) data.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from eos_support import (
    EosTopics,
    closers,
    read_outcome,
    start_worker,
    transactions,
    window_oracle,
)
from support import TopicReader, WorkerProcess, produce_json, reserve_base_port, wait_for

from millstream.config import Settings, load_settings
from millstream.dev import LocalCluster
from millstream.kafka import TopicAdmin, TopicSpec

#: librdkafka's reports of connections refused or timed out while a broker is down.
_NOISE = re.compile(r"millstream\.kafka \[\d+\] (FAIL|REQTMOUT) \[")
NODES = 3
WORKERS = 3
PARTITIONS = 6
CARDS = 2000
#: A wait that saw nothing new for this long logs what the group looks like.
STALL_SECONDS = 45.0


@dataclass
class ChaosCluster:
    cluster: LocalCluster
    bootstrap: str
    settings: Settings


@pytest.fixture(scope="module")
def chaos_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosCluster]:
    """A private 3-node cluster for this module's tests, on ports reserved for as long as
    it runs; stopped and wiped afterwards."""
    local_dir = tmp_path_factory.mktemp("chaos-cluster")
    with ExitStack() as reservations:
        port = reserve_base_port(NODES, reservations)
        cluster = LocalCluster(load_settings(local_dir=local_dir, dev_port=port))
        try:
            bootstrap = cluster.up(NODES)
            settings = load_settings(bootstrap_servers=bootstrap)
            assert TopicAdmin(settings).broker_count() == NODES
            yield ChaosCluster(cluster, bootstrap, settings)
        finally:
            cluster.down()
            # The brokers' logs outlive the cluster, for the investigation of a failure.
            for node in range(1, NODES + 1):
                log = cluster.files.node(node).log
                if log.exists():
                    shutil.copy(log, local_dir / f"broker-{node}.log")
            cluster.down(wipe=True)


class ChaosLog:
    """Timestamped chaos events, printed and kept in ``chaos.log``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __call__(self, message: str) -> None:
        line = f"{datetime.now():%H:%M:%S.%f}"[:-3] + f" +{self.elapsed():6.1f}s {message}"
        print(line, flush=True)
        with self.path.open("a") as handle:
            handle.write(line + "\n")


class Fleet:
    """The worker processes: one state directory and one log file per worker."""

    def __init__(
        self, topics: EosTopics, bootstrap: str, root: Path, guarantee: str, events: ChaosLog
    ) -> None:
        self.topics, self.bootstrap, self.events = topics, bootstrap, events
        self.env = {
            "TEST_GUARANTEE": guarantee,
            "TEST_REPLICATION": str(NODES),
            "TEST_PARTITIONS": str(PARTITIONS),
        }
        self.dirs = [root / f"w{i}-state" for i in range(WORKERS)]
        self.logs = [root / f"w{i}.log" for i in range(WORKERS)]
        self.workers: list[WorkerProcess | None] = [None] * WORKERS
        self.kills = 0
        #: Workers that exited without being killed: (worker, exit code, last log lines).
        self.crashes: list[tuple[int, int, str]] = []

    def start(self, i: int) -> None:
        with self.logs[i].open("a") as handle:
            handle.write(f"===== test: starting worker {i} at {datetime.now():%H:%M:%S.%f}\n")
        worker = start_worker(self.topics, self.bootstrap, self.dirs[i], self.logs[i], **self.env)
        self.workers[i] = worker
        self.events(f"worker {i} started (pid {worker.pid})")

    def supervise(self) -> None:
        """Restart workers that exited by themselves, as a process supervisor would.

        Exactly-once must hold whatever ends a worker, so the run goes on; the test
        still fails at the end, because a worker must survive a broker's restart.
        """
        for i, worker in enumerate(self.workers):
            if worker is not None and (code := worker.exit_code) is not None:
                tail = self.tail(i, 8)
                self.crashes.append((i, code, tail))
                self.events(f"WORKER {i} EXITED BY ITSELF (code {code}), restarting it:\n{tail}")
                self.start(i)

    def kill(self, i: int) -> None:
        self.supervise()
        worker = self.workers[i]
        assert worker is not None
        worker.kill()
        self.kills += 1
        self.events(f"kill -9 worker {i} (pid {worker.pid}), kill #{self.kills}")
        with self.logs[i].open("a") as handle:
            handle.write(f"===== test: killed worker {i} at {datetime.now():%H:%M:%S.%f}\n")

    def stop_all(self, timeout: float = 60) -> list[int | None]:
        """SIGTERM to every worker; their exit codes (None: still running after ``timeout``)."""
        for worker in self.workers:
            if worker is not None:
                worker.terminate()
        # Every worker shuts down at the same time, under one deadline: stopping them one
        # after the other would give each the whole timeout in turn.
        deadline = time.monotonic() + timeout
        codes: list[int | None] = []
        for worker in self.workers:
            remaining = max(0.1, deadline - time.monotonic())
            codes.append(worker.wait(remaining) if worker is not None else None)
        return codes

    def kill_all(self) -> None:
        for worker in self.workers:
            if worker is not None:
                worker.kill()

    def count(self, needle: str) -> int:
        return sum(
            log.read_text(errors="replace").count(needle) for log in self.logs if log.exists()
        )

    def tail(self, i: int, lines: int = 60) -> str:
        """The last ``lines`` of worker i's log, without the client's connection noise."""
        if not self.logs[i].exists():
            return "(no log)"
        text = self.logs[i].read_text(errors="replace").splitlines()
        return "\n".join([line for line in text if not _NOISE.search(line)][-lines:])

    def tails(self) -> str:
        return "\n".join(f"----- tail of {self.logs[i]}\n{self.tail(i)}" for i in range(WORKERS))


class Feeder(threading.Thread):
    """Produces ``records`` in chunks, spread over ``spread`` seconds, in the background."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        records: list[tuple[str, dict[str, Any]]],
        chunks: int,
        spread: float,
        events: ChaosLog,
    ) -> None:
        super().__init__(name="feeder", daemon=True)
        self.settings, self.topic, self.records = settings, topic, records
        self.chunks, self.spread, self.events = chunks, spread, events
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        size = -(-len(self.records) // self.chunks)
        started = time.monotonic()
        try:
            for k in range(self.chunks):
                chunk = self.records[k * size : (k + 1) * size]
                self.sent += produce_json(self.settings, self.topic, chunk)
                pause = started + self.spread * (k + 1) / self.chunks - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            self.events(f"feeder done: {self.sent} records produced")
        except BaseException as exc:  # re-raised by the test
            self.error = exc
            self.events(f"feeder FAILED after {self.sent} records: {exc!r}")


class Distinct:
    """Incremental read_committed view of an output topic: distinct keys seen so far."""

    def __init__(self, settings: Settings, topic: str, key: Callable[[Any, bytes], Any]) -> None:
        self.reader = TopicReader(settings, topic)
        self.key = key
        self.seen: set[Any] = set()
        self._done = 0

    def poll(self) -> int:
        self.reader.poll(1.0)
        records = self.reader.records
        for r in records[self._done :]:
            k = self.key(r.json(), r.key or b"")
            if k is not None:
                self.seen.add(k)
        self._done = len(records)
        return len(self.seen)

    def close(self) -> None:
        self.reader.close()


def awaited(
    events: ChaosLog,
    fleet: Fleet,
    reader: Distinct,
    target: int,
    what: str,
    timeout: float,
    on_stall: Callable[[], None] | None = None,
) -> None:
    """Wait until ``reader`` saw ``target`` distinct keys, logging progress every 15 s.

    ``on_stall`` runs once when nothing new arrived for :data:`STALL_SECONDS`, while
    the stalled workers can still be looked at.
    """
    deadline = time.monotonic() + timeout
    report = time.monotonic() + 15
    last_seen, last_change = -1, time.monotonic()
    while (seen := reader.poll()) < target:
        fleet.supervise()
        now = time.monotonic()
        if seen != last_seen:
            last_seen, last_change = seen, now
        elif on_stall is not None and now - last_change > STALL_SECONDS:
            events(f"no progress for {STALL_SECONDS:g}s at {seen} of {target} {what}:")
            on_stall()
            on_stall = None
        if now > deadline:
            events(f"gave up: {len(reader.seen)} of {target} {what} after {timeout:g}s")
            raise AssertionError(f"{len(reader.seen)} of {target} {what} after {timeout:g}s")
        if now > report:
            events(f"... {len(reader.seen)} of {target} {what}")
            report = now + 15
    events(f"all {target} {what} committed ({len(reader.reader.records)} records read)")


def enriched_id(value: Any, _key: bytes) -> int | None:
    return value["id"] if value["id"] >= 0 else None


def window_key(value: Any, key: bytes) -> tuple[str, int]:
    return (key.decode(), value["start"])


@dataclass
class Scenario:
    guarantee: str
    inputs: int
    max_kills: int
    chaos_seconds: float  # the chaos loop ends after this long (or max_kills) ...
    produce_seconds: float  # ... and never before the feeder is done
    kill_every: tuple[float, float] = (3.0, 6.0)
    broker_down_seconds: float = 10.0
    #: The broker dies once this many workers were killed ...
    broker_after_kills: int = 2
    #: ... a random one, or the one coordinating the app's consumer group.
    kill_coordinator: bool = False
    #: Which workers die when; MILLSTREAM_CHAOS_SEED=<seed from chaos.log> replays a run.
    seed: int = field(
        default_factory=lambda: int(
            os.environ.get("MILLSTREAM_CHAOS_SEED") or random.randrange(1 << 30)
        )
    )


@dataclass
class Result:
    topics: EosTopics
    records: list[tuple[str, dict[str, Any]]]
    kills: int
    broker_kills: int
    elapsed: float
    codes: list[int | None]
    fleet: Fleet
    events: ChaosLog


def run_chaos(scenario: Scenario, chaos_cluster: ChaosCluster, tmp_path: Path) -> Result:
    """Runs the scenario up to the workers' clean stop; prints their log tails on failure."""
    rng = random.Random(scenario.seed)
    settings, cluster = chaos_cluster.settings, chaos_cluster.cluster
    stem = f"chaos-{scenario.guarantee.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    topics = EosTopics(f"{stem}-app", f"{stem}-in", f"{stem}-out", f"{stem}-counts")
    TopicAdmin(settings).create([TopicSpec(topics.source, PARTITIONS, NODES)])
    records = transactions(scenario.inputs, CARDS)
    events = ChaosLog(tmp_path / "chaos.log")
    events(
        f"scenario {scenario.guarantee}: {scenario.inputs} inputs, up to {scenario.max_kills} "
        f"worker kills, seed {scenario.seed}, bootstrap {chaos_cluster.bootstrap}"
    )
    fleet = Fleet(topics, chaos_cluster.bootstrap, tmp_path, scenario.guarantee, events)
    feeder = Feeder(settings, topics.source, records, 25, scenario.produce_seconds, events)
    broker: int | None = None
    broker_back = False
    outputs: Distinct | None = None
    counts: Distinct | None = None
    codes: list[int | None] = []
    try:
        for i in range(WORKERS):
            fleet.start(i)
        wait_for(
            lambda: fleet.supervise() or fleet.count(" assigned ") >= WORKERS,
            90,
            "every worker assigned",
        )
        events("every worker has partitions; feeding")
        feeder.start()
        outputs = Distinct(settings, topics.enriched, enriched_id)

        # -- chaos: bounded by kills and time; the broker is always back at the end.
        chaos_until = time.monotonic() + scenario.chaos_seconds
        broker_down_at = 0.0
        while True:
            finished = (
                fleet.kills >= scenario.max_kills or time.monotonic() > chaos_until
            ) and not feeder.is_alive()
            if finished and (broker is None or broker_back):
                break
            pause_until = time.monotonic() + rng.uniform(*scenario.kill_every)
            while time.monotonic() < pause_until:
                outputs.poll()
                fleet.supervise()
            if broker is None and fleet.kills >= scenario.broker_after_kills:
                if scenario.kill_coordinator:
                    broker = group_coordinator(settings, topics.app)
                    events(f"broker {broker} coordinates group {topics.app}")
                else:
                    broker = rng.randint(1, NODES)
                cluster.stop_node(broker, kill=True)
                broker_down_at = time.monotonic()
                events(f"kill -9 broker {broker}")
                continue
            broker_due = time.monotonic() - broker_down_at >= scenario.broker_down_seconds
            if broker is not None and not broker_back and broker_due:
                events(f"starting broker {broker}")
                cluster.start_node(broker)
                broker_back = True
                events(f"broker {broker} is back (all nodes alive: {cluster.status().healthy})")
                continue
            if fleet.kills < scenario.max_kills and time.monotonic() <= chaos_until:
                victim = rng.randrange(WORKERS)
                fleet.kill(victim)
                fleet.start(victim)
        events(f"chaos over: {fleet.kills} worker kills, broker {broker} killed and restarted")

        feeder.join(120)
        assert not feeder.is_alive(), "the feeder did not finish"
        if feeder.error is not None:
            raise feeder.error
        assert feeder.sent == scenario.inputs

        n = scenario.inputs
        stalled = Stalled(settings, fleet, topics, events)
        awaited(events, fleet, outputs, n, "enriched outputs", 180, stalled)
        produce_json(settings, topics.source, closers(CARDS))
        expected = len(window_oracle(records))
        counts = Distinct(settings, topics.counts, window_key)
        awaited(events, fleet, counts, expected, "window counts", 180, stalled)
        fleet.supervise()
        codes = fleet.stop_all()
        events(f"workers stopped with {codes}")
    except BaseException:
        fleet.stop_all(timeout=20)  # their last words: what they did, where they were
        fleet.kill_all()
        print(f"\n{fleet.tails()}", flush=True)
        raise
    finally:
        if outputs is not None:
            outputs.close()
        if counts is not None:
            counts.close()
        fleet.stop_all(timeout=20)
        fleet.kill_all()
        if broker is not None and not broker_back:
            cluster.start_node(broker)
        feeder.join(60)
    return Result(
        topics,
        records,
        fleet.kills,
        1 if broker is not None else 0,
        events.elapsed(),
        codes,
        fleet,
        events,
    )


class Stalled:
    """What a stalled run looks like from outside, logged to ``chaos.log``: the group's
    members with their current and target assignments, each input and repartition
    partition's log start, committed offset and end, and a py-spy dump of every worker
    (when py-spy is installed)."""

    def __init__(
        self, settings: Settings, fleet: Fleet, topics: EosTopics, events: ChaosLog
    ) -> None:
        self.settings, self.fleet, self.topics, self.events = settings, fleet, topics, events

    def __call__(self) -> None:
        try:
            self.group()
            self.offsets()
        except Exception as exc:  # a diagnosis must not hide the failure it explains
            self.events(f"reading the group failed: {exc!r}")
        self.stacks()

    def group(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.settings.bootstrap_servers})
        app = self.topics.app
        group = admin.describe_consumer_groups([app], request_timeout=10)[app].result(15)
        for member in group.members:
            target = member.target_assignment
            self.events(
                f"member {member.client_id}: owns {_partitions(member.assignment)}, "
                f"target {_partitions(target) if target is not None else '?'}"
            )

    def offsets(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.settings.bootstrap_servers})
        app = self.topics.app
        request = [ConsumerGroupTopicPartitions(app)]
        answer = admin.list_consumer_group_offsets(request)[app].result(15)
        committed = {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions}
        repartition = f"{app}-by-card-repartition"
        tps = [
            TopicPartition(topic, p)
            for topic in (self.topics.source, repartition)
            for p in range(PARTITIONS)
        ]
        ends = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}, request_timeout=10)
        starts = admin.list_offsets({tp: OffsetSpec.earliest() for tp in tps}, request_timeout=10)
        for tp in tps:
            self.events(
                f"{tp.topic}[{tp.partition}]: start {starts[tp].result(15).offset}, "
                f"committed {committed.get((tp.topic, tp.partition))}, "
                f"end {ends[tp].result(15).offset}"
            )

    def stacks(self) -> None:
        py_spy = shutil.which("py-spy") or shutil.which(
            "py-spy", path=str(Path(sys.executable).parent)
        )
        if py_spy is None:
            self.events("py-spy is not installed: no stacks")
            return
        for i, worker in enumerate(self.fleet.workers):
            if worker is not None and worker.exit_code is None:
                dump = subprocess.run(
                    [py_spy, "dump", "--pid", str(worker.pid)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                self.events(f"worker {i} (pid {worker.pid}):\n{dump.stdout}{dump.stderr}")


def _partitions(assignment: Any) -> str:
    parts = sorted(
        (tp.topic.rsplit("-", 1)[-1], tp.partition) for tp in assignment.topic_partitions
    )
    return ", ".join(f"{topic}[{p}]" for topic, p in parts) or "nothing"


def group_coordinator(settings: Settings, group: str) -> int:
    """The node id of the broker coordinating ``group`` (node ids are 1..NODES)."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    future = admin.describe_consumer_groups([group], request_timeout=10)[group]
    node = int(future.result(timeout=15).coordinator.id)
    assert 1 <= node <= NODES, f"coordinator {node} is not a node of the local cluster"
    return node


def crash_report(fleet: Fleet) -> str:
    lines = [f"{len(fleet.crashes)} worker exit(s) nobody asked for:"]
    lines += [f"worker {i}, exit code {code}:\n{tail}" for i, code, tail in fleet.crashes]
    return "\n".join(lines)


def summary(result: Result, settings: Settings) -> tuple[str, Any]:
    outcome = read_outcome(settings, result.topics, timeout=120)
    ids = outcome.enriched_ids
    n = len(result.records)
    missing = n - len(set(ids) & set(range(n)))
    duplicated_ids = sum(c - 1 for c in ids.values() if c > 1)
    duplicated_windows = sum(c - 1 for c in outcome.windows.values() if c > 1)
    line = (
        f"inputs {n}, enriched outputs {sum(ids.values())} ({missing} missing, "
        f"{duplicated_ids} duplicated), windows {len(outcome.windows)} "
        f"({duplicated_windows} emitted more than once), worker kills {result.kills}, "
        f"broker kills {result.broker_kills}, aborted transactions "
        f"{result.fleet.count('transaction aborted')}, fenced "
        f"{result.fleet.count('was fenced')}, stuck producers replaced "
        f"{result.fleet.count('producer is stuck')}, unexpected worker exits "
        f"{len(result.fleet.crashes)}, elapsed {result.elapsed:.0f}s"
    )
    return line, outcome


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_exactly_once_survives_kill_9_of_workers_and_a_broker(
    chaos_cluster: ChaosCluster, tmp_path: Path
) -> None:
    scenario = Scenario("exactly_once", 500_000, max_kills=12, chaos_seconds=80, produce_seconds=60)
    result = run_chaos(scenario, chaos_cluster, tmp_path)
    assert_exactly_once(scenario, result, chaos_cluster.settings)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_exactly_once_rides_out_the_loss_of_the_group_coordinator(
    chaos_cluster: ChaosCluster, tmp_path: Path
) -> None:
    """No worker is killed; the broker coordinating the group dies while they commit.

    librdkafka can then block for ever in send_offsets_to_transaction() (see
    millstream/kafka/transactions.py); a worker must replace such a producer and go on.
    """
    scenario = Scenario(
        "exactly_once",
        150_000,
        max_kills=0,
        chaos_seconds=30,
        produce_seconds=30,
        broker_after_kills=0,
        kill_coordinator=True,
    )
    result = run_chaos(scenario, chaos_cluster, tmp_path)
    assert result.broker_kills == 1
    assert_exactly_once(scenario, result, chaos_cluster.settings)


def assert_exactly_once(scenario: Scenario, result: Result, settings: Settings) -> None:
    """Every input enriched once, every window counted once and right, clean stops."""
    line, outcome = summary(result, settings)
    result.events(f"exactly-once: {line}")
    try:
        assert set(outcome.enriched_ids) == set(range(scenario.inputs)), "missing outputs"
        assert outcome.duplicates() == 0, "duplicated outputs or windows"
        expected = window_oracle(result.records)
        wrong = {
            k: (outcome.values.get(k), v) for k, v in expected.items() if outcome.values.get(k) != v
        }
        assert not wrong, f"{len(wrong)} window counts differ, e.g. {list(wrong.items())[:5]}"
        assert outcome.values == expected
        assert result.codes == [0] * WORKERS, "a worker did not stop cleanly"
        assert not result.fleet.crashes, crash_report(result.fleet)
    except AssertionError:
        print(f"\n{result.fleet.tails()}", flush=True)
        raise


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_at_least_once_under_the_same_chaos_loses_nothing_but_duplicates(
    chaos_cluster: ChaosCluster, tmp_path: Path
) -> None:
    scenario = Scenario("at_least_once", 200_000, max_kills=5, chaos_seconds=40, produce_seconds=30)
    result = run_chaos(scenario, chaos_cluster, tmp_path)
    line, outcome = summary(result, chaos_cluster.settings)
    result.events(f"at-least-once: {line} (duplicates are allowed here)")
    try:
        assert set(outcome.enriched_ids) == set(range(scenario.inputs)), "missing outputs"
        expected = window_oracle(result.records)
        assert set(outcome.windows) == set(expected), "missing or unexpected windows"
        # A record processed twice after a crash is counted twice: never fewer.
        low = {k: (outcome.lowest[k], v) for k, v in expected.items() if outcome.lowest[k] < v}
        assert not low, f"{len(low)} windows undercounted, e.g. {list(low.items())[:5]}"
        assert result.codes == [0] * WORKERS, "a worker did not stop cleanly"
        assert not result.fleet.crashes, crash_report(result.fleet)
    except AssertionError:
        print(f"\n{result.fleet.tails()}", flush=True)
        raise
