"""``millstream status`` and ``millstream reset`` against the real cluster, with Kafka's
own ``kafka-consumer-groups`` (ConsumerGroupCommand, from the local cluster's jars) as
the oracle for committed offsets, end offsets and lag.

The input is written in Kafka transactions, so every partition's end offset includes
commit markers: a group that read everything still lags by the markers, in the tool's
figures and so in ours. Comparisons are made while the worker is frozen (SIGSTOP) or
dead (SIGKILL), and only from readings that did not change while the tool ran.
"""

from __future__ import annotations

import datetime
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import (
    ROOT,
    Names,
    WorkerProcess,
    committed_offsets,
    delete_topics,
    produce,
    record_count,
    wait_for,
)
from typer.testing import CliRunner, Result

from millstream.cli import cli
from millstream.config import Settings
from millstream.dev.assembly import BrokerJars, check_java, packaged_kafka_version
from millstream.kafka import TopicAdmin, TopicSpec, make_producer

pytestmark = pytest.mark.timeout(240)

APP = "tests.integration.apps.stateless:app"
TOOL = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
DESCRIBE = ("--describe", "--group")
Row = tuple[int | None, int | None, int | None]


@pytest.fixture
def input_partitions() -> int:
    return 6  # as the stateless app declares its input


@pytest.fixture(scope="module")
def tool_class_path(settings: Settings) -> str:
    """The class path of Kafka's tools: the local cluster's jars when they include them,
    else the same jars assembled aside (once) from the packaged pom."""
    version = packaged_kafka_version()
    for libs in (settings.local_dir / "kafka" / "libs", ROOT / ".local" / "kafka" / "libs"):
        if any((libs / version).glob("kafka-tools-[0-9]*.jar")):
            return str(libs / version / "*")
    return BrokerJars(ROOT / ".local" / "kafka-tools", version).ensure().as_posix() + "/*"


def kafka_describe(class_path: str, bootstrap: str, group: str) -> dict[tuple[str, int], Row]:
    """(committed, end, lag) per partition row of ``kafka-consumer-groups --describe``,
    ``-`` as None; also the consumer id of each row, under the key ("owner", ...)."""
    result = subprocess.run(
        [check_java(), "-cp", class_path, TOOL, "--bootstrap-server", bootstrap, *DESCRIBE, group],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"the tool failed:\n{result.stdout}\n{result.stderr}"
    rows: dict[tuple[str, int], Row] = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[0] != group:
            continue
        numbers = [None if f == "-" else int(f) for f in fields[3:6]]
        rows[(fields[1], int(fields[2]))] = (numbers[0], numbers[1], numbers[2])
    assert rows, f"the tool printed no partition rows:\n{result.stdout}"
    return rows


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def status_json(bootstrap: str, group: str) -> dict[str, Any]:
    result = run_cli("status", group, "--json", "-b", bootstrap)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = orjson.loads(result.stdout)
    return data


def ours(status: dict[str, Any]) -> dict[tuple[str, int], Row]:
    return {
        (p["topic"], p["partition"]): (p["committed"], p["end"], p["lag"])
        for p in status["partitions"]
    }


def compare_with_tool(class_path: str, bootstrap: str, group: str) -> dict[str, Any]:
    """Compare our figures with the tool's, from a reading that stayed the same while the
    tool ran; returns that reading."""
    for _ in range(10):
        before = status_json(bootstrap, group)
        theirs = kafka_describe(class_path, bootstrap, group)
        after = status_json(bootstrap, group)
        if ours(before) != ours(after):
            continue  # an offset moved meanwhile (a commit in flight): read again
        mine = ours(before)
        assert set(theirs) <= set(mine), f"rows only the tool shows: {set(theirs) - set(mine)}"
        for key, row in theirs.items():
            assert mine[key] == row, f"{key}: status says {mine[key]}, the tool {row}"
        # Partitions the tool leaves out are those nothing was committed to.
        assert all(mine[k][0] is None for k in set(mine) - set(theirs))
        return before
    raise AssertionError("the group's offsets kept moving while frozen")


def produce_in_transactions(settings: Settings, topic: str, count: int, per_txn: int) -> None:
    producer = make_producer(settings, **{"transactional.id": f"status-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    for start in range(0, count, per_txn):
        producer.begin_transaction()
        for i in range(start, min(start + per_txn, count)):
            producer.produce(topic, orjson.dumps({"amount": i + 1}), str(i).encode())
        producer.commit_transaction(30)


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        if worker.exit_code is None:
            worker.send_signal(signal.SIGCONT)  # a frozen worker cannot stop
        worker.stop(30)


def start_worker(
    names: Names, bootstrap: str, tmp_path: Path, workers: list[WorkerProcess], **env: str
) -> WorkerProcess:
    worker = WorkerProcess(APP, names.env(bootstrap, tmp_path, **env), tmp_path / "worker.log")
    workers.append(worker)
    return worker


def test_status_equals_kafka_tool_during_a_run_and_after_kill_9(
    names: Names,
    settings: Settings,
    bootstrap_servers: str,
    tool_class_path: str,
    tmp_path: Path,
    workers: list[WorkerProcess],
) -> None:
    produce_in_transactions(settings, names.source, 3000, 250)
    worker = start_worker(names, bootstrap_servers, tmp_path, workers, TEST_SLOW_US="4000")

    def committed_some() -> bool:
        worker.running()
        return any(c > 0 for c in committed_offsets(settings, names.app, names.source, 6).values())

    wait_for(committed_some, 90, "the worker's first commit")
    # The member, read while it runs (a frozen one is dropped after the session timeout),
    # once the coordinator has seen it take all six partitions (it acknowledges them in a
    # heartbeat, which can come after its first commit).
    everything = [[names.source, p] for p in range(6)]
    seen: list[dict[str, Any]] = []

    def settled() -> bool:
        seen[:] = [status_json(bootstrap_servers, names.app)]
        members = seen[0]["members"]
        return len(members) == 1 and sorted(members[0]["partitions"]) == everything

    wait_for(settled, 30, "the member to hold all six partitions", observed=lambda: str(seen))
    running = seen[0]
    assert running["protocol"] in ("consumer", "classic")
    assert running["members"][0]["client_id"] == f"{names.app}-{worker.pid}"
    assert running["members"][0]["pending"] == []
    assert running["dlq"] == {"topic": names.dlq, "records": 0}

    worker.send_signal(signal.SIGSTOP)
    frozen = compare_with_tool(tool_class_path, bootstrap_servers, names.app)
    assert sum(p["lag"] or 0 for p in frozen["partitions"]) > 0, "no lag to compare"
    assert frozen["total_lag"] == sum(p["lag"] or 0 for p in frozen["partitions"])
    assert {p["topic"] for p in frozen["partitions"]} == {names.source}
    for p in frozen["partitions"]:
        assert set(p) == {"topic", "partition", "committed", "end", "lag"}

    worker.send_signal(signal.SIGCONT)
    before = committed_offsets(settings, names.app, names.source, 6)
    wait_for(
        lambda: committed_offsets(settings, names.app, names.source, 6) != before,
        60,
        "a commit after the worker went on",
    )
    worker.kill()
    dead = compare_with_tool(tool_class_path, bootstrap_servers, names.app)
    assert sum(p["lag"] or 0 for p in dead["partitions"]) > 0
    assert ours(dead) != ours(frozen), "the worker committed nothing between the readings"


def test_status_of_a_finished_group_lags_by_the_commit_markers(
    names: Names,
    settings: Settings,
    bootstrap_servers: str,
    tool_class_path: str,
    tmp_path: Path,
    workers: list[WorkerProcess],
) -> None:
    produce_in_transactions(settings, names.source, 600, 100)
    worker = start_worker(names, bootstrap_servers, tmp_path, workers)
    wait_for(
        lambda: worker.running() and record_count(settings, names.out) >= 600,
        90,
        "600 output records",
    )
    assert worker.stop(60) == 0
    wait_for(
        lambda: status_json(bootstrap_servers, names.app)["members"] == [],
        30,
        "the stopped worker to leave the group",
    )
    status = compare_with_tool(tool_class_path, bootstrap_servers, names.app)
    ends = {p["partition"]: p["end"] for p in status["partitions"]}
    committed = committed_offsets(settings, names.app, names.source, 6)
    # The group read every record; what is left in each partition is the commit marker
    # of the last transaction that wrote to it: a lag of 1, in the tool's figures too.
    assert {p["lag"] for p in status["partitions"]} == {1}
    assert sum(ends.values()) - sum(committed.values()) == status["total_lag"] == 6
    assert status["state"] == "Empty"


def test_module_attribute_names_the_app_and_its_topics(
    names: Names, settings: Settings, bootstrap_servers: str
) -> None:
    produce(settings, names.source, [("k", b'{"amount": 1}')])
    run = run_cli("reset", names.app, "--to", "latest", "--topic", names.source)
    assert run.exit_code == 0, run.output
    env = names.env(bootstrap_servers)
    result = subprocess.run(
        [sys.executable, "-m", "millstream", "status", APP, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    status = orjson.loads(result.stdout)
    assert status["group"] == names.app
    assert status["topics"] == {names.source: "source"}
    lags = {p["partition"]: p["lag"] for p in status["partitions"]}
    assert set(lags) == set(range(6)) and set(lags.values()) == {0}


def test_reset_refuses_while_a_member_is_alive_and_works_after_it_stopped(
    names: Names,
    settings: Settings,
    bootstrap_servers: str,
    tmp_path: Path,
    workers: list[WorkerProcess],
) -> None:
    produce(settings, names.source, [(str(i), orjson.dumps({"amount": i + 1})) for i in range(200)])
    worker = start_worker(names, bootstrap_servers, tmp_path, workers)
    wait_for(
        lambda: (
            worker.running()
            and sum(committed_offsets(settings, names.app, names.source, 6).values()) == 200
        ),
        90,
        "the worker to commit all 200 records",
    )
    refused = run_cli("reset", names.app, "--to", "earliest", "-b", bootstrap_servers)
    assert refused.exit_code == 1
    assert "live member" in refused.output and f"{names.app}-{worker.pid}" in refused.output
    assert sum(committed_offsets(settings, names.app, names.source, 6).values()) == 200

    assert worker.stop(60) == 0
    wait_for(
        lambda: status_json(bootstrap_servers, names.app)["members"] == [],
        30,
        "the stopped worker to leave the group",
    )
    before = committed_offsets(settings, names.app, names.source, 6)
    done = run_cli("reset", names.app, "--to", "earliest", "-b", bootstrap_servers)
    assert done.exit_code == 0, done.output
    assert f"reset 6 partitions of group {names.app}" in done.output
    assert sum(before.values()) == 200
    assert set(committed_offsets(settings, names.app, names.source, 6).values()) == {0}

    again = start_worker(names, bootstrap_servers, tmp_path, workers)
    wait_for(
        lambda: again.running() and record_count(settings, names.out) >= 400,
        90,
        "the restarted worker to read the 200 records again",
    )


def test_reset_to_a_time_and_dry_run(
    settings: Settings, admin: TopicAdmin, bootstrap_servers: str, unique_name: Any
) -> None:
    topic, group = unique_name("timed"), unique_name("group")
    admin.create([TopicSpec(topic, 1)])
    try:
        check_reset_to_times(settings, bootstrap_servers, topic, group)
    finally:
        delete_topics(settings, [topic])


def check_reset_to_times(
    settings: Settings, bootstrap_servers: str, topic: str, group: str
) -> None:
    base = int(time.time() * 1000) - 60_000
    produce(
        settings,
        topic,
        [(str(i), b"{}") for i in range(10)],
        timestamps=[base + i * 1000 for i in range(10)],
    )

    def reset(to: str, *extra: str) -> Result:
        result = run_cli(
            "reset", group, "--to", to, "--topic", topic, "-b", bootstrap_servers, *extra
        )
        assert result.exit_code == 0, result.output
        return result

    def committed() -> int:
        return committed_offsets(settings, group, topic, 1)[0]

    iso = datetime.datetime.fromtimestamp((base + 4500) / 1000, tz=datetime.UTC).isoformat()
    reset(iso)
    assert committed() == 5
    reset(str(base + 2000))
    assert committed() == 2
    dry = reset("latest", "--dry-run")
    assert "dry run" in dry.output and committed() == 2
    reset(str(base + 3_600_000))  # after the last record: the end, as the Kafka tool does
    assert committed() == 10
    reset("earliest")
    assert committed() == 0
    status = status_json(bootstrap_servers, group)
    assert ours(status) == {(topic, 0): (0, 10, 10)}


def test_unknown_group_and_bad_target_are_clear_errors(bootstrap_servers: str) -> None:
    group = f"no-such-group-{uuid.uuid4().hex[:8]}"
    result = run_cli("status", group, "-b", bootstrap_servers)
    assert result.exit_code == 1
    assert f"consumer group {group!r} does not exist" in result.output
    result = run_cli("reset", group, "--to", "earliest", "-b", bootstrap_servers)
    assert result.exit_code == 1 and "nothing to reset" in result.output
    result = run_cli("reset", group, "--to", "last tuesday", "-b", bootstrap_servers)
    assert result.exit_code == 2 and "ISO-8601" in result.output


def test_watch_prints_a_reading_per_interval_until_interrupted(
    names: Names, settings: Settings, bootstrap_servers: str
) -> None:
    produce(settings, names.source, [("k", b'{"amount": 1}')])
    reset = run_cli(
        "reset", names.app, "--to", "earliest", "-t", names.source, "-b", bootstrap_servers
    )
    assert reset.exit_code == 0, reset.output
    command = [sys.executable, "-m", "millstream", "status", names.app, "--watch", "0.3", "--json"]
    watcher = subprocess.Popen(
        [*command, "-b", bootstrap_servers], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert watcher.stdout is not None
        readings = []
        deadline = time.monotonic() + 60
        while len(readings) < 3:
            ready, _, _ = select.select(
                [watcher.stdout], [], [], max(0.0, deadline - time.monotonic())
            )
            assert ready, f"{len(readings)} readings within 60 s"
            readings.append(orjson.loads(watcher.stdout.readline()))
        assert {r["group"] for r in readings} == {names.app}
        assert all(r["total_lag"] == 1 for r in readings)
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(30) == 0
    finally:
        watcher.kill()
        watcher.wait(30)
