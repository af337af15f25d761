"""`millstream worker --log-format json`: every line a JSON object with the app and worker,
and the partition on lines about one."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from support import Names, WorkerProcess, produce, produce_json, record_count, wait_for

from millstream.config import Settings

STATELESS = "tests.integration.apps.stateless:app"


@pytest.fixture
def input_partitions() -> int:
    return 6  # as apps/stateless.py declares


def parsed(text: str) -> list[dict[str, object]]:
    """Every line of ``text`` as a JSON object; fails naming the first line that is not one."""
    entries = []
    for line in text.splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise AssertionError(f"not a JSON line: {line!r}") from exc
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


def test_two_workers_log_json_lines_with_app_worker_and_partition(
    names: Names, settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    env = names.env(bootstrap_servers, MILLSTREAM_LOG_FORMAT="text")
    workers = WorkerProcess(
        STATELESS, env, tmp_path / "workers.log", processes=2, args=["--log-format", "json"]
    )
    try:
        wait_for(
            lambda: (
                workers.running()
                and len(
                    {e["pid"] for e in parsed(workers.text()) if "assigned" in str(e["message"])}
                )
                == 2
            ),
            60,
            "both workers to get partitions",
            observed=lambda: workers.text()[-2000:],
        )
        produce_json(settings, names.source, [(f"k{n}", {"amount": n + 1}) for n in range(100)])
        produce(settings, names.source, [(b"broken", b"{not json")])
        wait_for(lambda: record_count(settings, names.out) >= 100, 60, "every output")
        wait_for(lambda: record_count(settings, names.dlq) >= 1, 60, "the dead letter")
    finally:
        code = workers.stop(30)
    assert code == 0, workers.text()[-3000:]
    entries = parsed(workers.text())
    required = {"time", "level", "logger", "message", "app_id", "worker_id", "pid"}
    for entry in entries:
        if entry["logger"] == "millstream.supervisor":
            continue  # the parent process, which is no worker
        assert required <= entry.keys(), entry
        assert entry["app_id"] == names.app
        assert entry["worker_id"] == f"{names.app}-{entry['pid']}"
    workers_seen = {(e["worker_index"], e["pid"]) for e in entries if "worker_index" in e}
    assert {index for index, _ in workers_seen} == {0, 1}, workers_seen
    [dead] = [e for e in entries if "sent to" in str(e["message"])]
    assert dead["level"] == "WARNING"
    assert dead["topic"] == names.source
    assert isinstance(dead["partition"], int) and 0 <= dead["partition"] < 6
    stopped = [e for e in entries if str(e["message"]).startswith("worker stopped:")]
    assert len(stopped) == 2
