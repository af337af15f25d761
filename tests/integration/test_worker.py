"""The worker runtime against the real cluster: exact outputs, sharing, shutdown, dead letters."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import (
    ROOT,
    Names,
    ThreadedWorker,
    WorkerProcess,
    consume_all,
    produce,
    produce_json,
    record_count,
    wait_for,
)

from millstream import App
from millstream.config import Settings, load_settings
from millstream.errors import BrokerUnreachableError

STATELESS = "tests.integration.apps.stateless:app"


def transactions(n: int) -> list[tuple[str, dict[str, Any]]]:
    return [(f"card-{i % 977}", {"id": i, "amount": (i * 37) % 200 - 50}) for i in range(n)]


def expected_output(records: list[tuple[str, dict[str, Any]]]) -> Counter[tuple[str, bytes]]:
    return Counter(
        (key, orjson.dumps({**v, "usd": round(v["amount"] * 1.1, 2)}))
        for key, v in records
        if v["amount"] > 0
    )


def actual_output(settings: Settings, topic: str, count: int) -> Counter[tuple[str, bytes]]:
    return Counter(
        (r.key.decode(), r.value) for r in consume_all(settings, topic, count=count, timeout=120)
    )


@pytest.fixture
def input_partitions() -> int:
    return 6  # as apps/stateless.py declares


def stateless_app(names: Names, bootstrap: str) -> App:
    app = App(names.app, bootstrap_servers=bootstrap, commit_interval=0.5)
    src = app.topic(names.source, partitions=6)
    out = app.topic(names.out, partitions=6)
    app.stream(src).filter(lambda v: v["amount"] > 0).map(
        lambda v: {**v, "usd": round(v["amount"] * 1.1, 2)}
    ).to(out)
    return app


def test_100k_records_through_map_and_filter_match_exactly(
    names: Names, settings: Settings, bootstrap_servers: str
) -> None:
    app = stateless_app(names, bootstrap_servers)
    records = transactions(100_000)
    expected = expected_output(records)
    worker = ThreadedWorker(app)
    produce_json(settings, names.source, records)

    wait_for(
        lambda: record_count(settings, names.out) >= sum(expected.values()),
        120,
        "all outputs",
    )
    stats = worker.stop()

    assert actual_output(settings, names.out, sum(expected.values())) == expected
    assert record_count(settings, names.out) == sum(expected.values()), "extra outputs"
    assert stats.records_in == 100_000
    assert stats.dead_letters == 0


def test_two_worker_processes_share_partitions(
    names: Names, settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    records = transactions(60_000)
    expected = expected_output(records)
    env = names.env(bootstrap_servers, TEST_SLOW_US="20")
    workers = WorkerProcess(STATELESS, env, tmp_path / "workers.log", processes=2)
    try:
        wait_for(lambda: _assigned_pids(workers.text()) >= 2, 60, "both workers to get partitions")
        produce_json(settings, names.source, records)
        wait_for(
            lambda: record_count(settings, names.out) >= sum(expected.values()),
            120,
            "all outputs",
        )
    finally:
        code = workers.stop(30)
    assert code == 0
    assert actual_output(settings, names.out, sum(expected.values())) == expected
    assert record_count(settings, names.out) == sum(expected.values())
    text = workers.text()
    processed = [line for line in text.splitlines() if "worker stopped:" in line]
    assert len(processed) == 2, text[-3000:]
    assert all(" 0 in," not in line for line in processed), "a worker processed nothing"


def _assigned_pids(log: str) -> int:
    pids = {
        line.split("[")[1].split("]")[0]
        for line in log.splitlines()
        if "millstream.worker" in line and " assigned " in line
    }
    return len(pids)


def test_sigterm_mid_run_loses_nothing(
    names: Names, settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    records = transactions(40_000)
    expected = expected_output(records)
    produce_json(settings, names.source, records)
    env = names.env(bootstrap_servers, TEST_SLOW_US="100")

    first = WorkerProcess(STATELESS, env, tmp_path / "first.log")
    wait_for(lambda: record_count(settings, names.out) > 1000, 60, "first outputs")
    started = time.monotonic()
    code = first.stop(20)
    assert code == 0, first.text()[-2000:]
    assert time.monotonic() - started < 10, "shutdown took too long"
    partial = record_count(settings, names.out)
    assert partial < sum(expected.values()), "the run finished before SIGTERM; slow it down"

    second = WorkerProcess(STATELESS, env, tmp_path / "second.log")
    try:
        wait_for(
            lambda: record_count(settings, names.out) >= sum(expected.values()),
            120,
            "the second worker to finish",
        )
    finally:
        second.stop(20)
    # A clean shutdown commits what it produced: nothing missing and nothing repeated.
    assert actual_output(settings, names.out, sum(expected.values())) == expected
    assert record_count(settings, names.out) == sum(expected.values())


def test_malformed_and_failing_records_go_to_the_dlq_with_headers(
    names: Names, settings: Settings, bootstrap_servers: str
) -> None:
    app = stateless_app(names, bootstrap_servers)
    good = transactions(1000)
    good_bytes = [(k, orjson.dumps(v)) for k, v in good]
    bad = [("bad-json", b"{not json"), ("no-amount", orjson.dumps({"id": -1}))]
    produce(settings, names.source, good_bytes[:500] + bad + good_bytes[500:])
    worker = ThreadedWorker(app)
    expected = expected_output(good)
    wait_for(lambda: record_count(settings, names.out) >= sum(expected.values()), 60, "outputs")
    wait_for(lambda: record_count(settings, names.dlq) >= 2, 30, "dead letters")
    stats = worker.stop()

    assert actual_output(settings, names.out, sum(expected.values())) == expected
    letters = {r.key: r for r in consume_all(settings, names.dlq)}
    assert set(letters) == {b"bad-json", b"no-amount"}
    malformed = letters[b"bad-json"]
    assert malformed.value == b"{not json"
    assert malformed.headers["millstream.error.type"] == b"millstream.errors.SerializationError"
    assert b"invalid JSON" in malformed.headers["millstream.error"]
    assert malformed.headers["millstream.source.topic"] == names.source.encode()
    assert malformed.headers["millstream.source.partition"].isdigit()
    assert malformed.headers["millstream.source.offset"].isdigit()
    failing = letters[b"no-amount"]
    assert failing.headers["millstream.error.type"] == b"builtins.KeyError"
    assert failing.headers["millstream.error.step"].startswith(b"filter(")
    assert stats.dead_letters == 2


def test_unreachable_bootstrap_fails_fast_and_clearly(unique_name: Callable[[str], str]) -> None:
    settings = load_settings(bootstrap_servers="127.0.0.1:1", client_timeout=3)
    app = App(unique_name("app"), settings=settings)
    app.stream(app.topic("anything", partitions=1)).to(app.topic("elsewhere", partitions=1))
    started = time.monotonic()
    with pytest.raises(BrokerUnreachableError, match=r"127\.0\.0\.1:1 within 3s"):
        app.run()
    assert time.monotonic() - started < 10


def test_unreachable_bootstrap_in_the_cli_is_one_clear_line(names: Names) -> None:
    env = names.env("127.0.0.1:1", MILLSTREAM_CLIENT_TIMEOUT="3")
    result = subprocess.run(
        [sys.executable, "-m", "millstream", "worker", STATELESS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "no Kafka broker answered at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("protocol", ["auto", "classic"])
def test_group_protocols(
    protocol: str, names: Names, settings: Settings, bootstrap_servers: str
) -> None:
    app = App(
        names.app,
        bootstrap_servers=bootstrap_servers,
        group_protocol=protocol,  # type: ignore[arg-type]
        commit_interval=0.5,
    )
    app.stream(app.topic(names.source, partitions=6)).to(app.topic(names.out, partitions=6))
    worker = ThreadedWorker(app)
    produce_json(settings, names.source, [(str(i), {"i": i}) for i in range(500)])
    wait_for(lambda: record_count(settings, names.out) >= 500, 60, "outputs")
    stats = worker.stop()
    chosen = worker.worker.group_protocol
    assert chosen == ("consumer" if protocol == "auto" else "classic")
    assert stats.records_in == 500
