"""Restore progress in ``millstream status``: what a worker reports while it restores a
store (commits of its restore consumer to ``{app}-restore``), and how status shows a
restore that did not finish."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import Names, WorkerProcess, committed_offsets, end_offsets, produce, wait_for
from typer.testing import CliRunner

from millstream.cli import cli
from millstream.config import Settings
from millstream.groups.restores import parse_reports, restore_group
from millstream.kafka import TopicAdmin, TopicPartition, TopicSpec, make_consumer
from millstream.kafka.groups import GroupAdmin

pytestmark = pytest.mark.timeout(180)

TABLES = "tests.integration.apps.tables:app"


@pytest.fixture
def input_partitions() -> int:
    return 4  # as the tables app declares its input


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop(30)


def status_json(bootstrap: str, group: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["status", group, "--json", "-b", bootstrap])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = orjson.loads(result.stdout)
    return data


def test_a_restarted_worker_reports_its_restore(
    names: Names,
    settings: Settings,
    bootstrap_servers: str,
    tmp_path: Path,
    workers: list[WorkerProcess],
) -> None:
    changelog = f"{names.app}-counts-changelog"
    produce(settings, names.source, [(f"k{i % 40}", b'{"n": 1}') for i in range(2000)])
    env = names.env(bootstrap_servers, tmp_path / "state")
    first = WorkerProcess(TABLES, env, tmp_path / "first.log")
    workers.append(first)
    wait_for(
        lambda: (
            first.running()
            and sum(committed_offsets(settings, names.app, names.source, 4).values()) == 2000
        ),
        90,
        "the first worker to commit all 2000 records",
    )
    assert first.stop(60) == 0
    ends = end_offsets(settings, changelog)
    assert sum(ends.values()) > 0

    second = WorkerProcess(TABLES, env, tmp_path / "second.log")  # memory stores: restores all
    workers.append(second)
    groups = GroupAdmin(settings)

    def reported() -> bool:
        second.running()
        reports = parse_reports(groups.committed_metadata(restore_group(names.app)))
        return {(r.partition, r.position) for r in reports} >= {
            (p, end) for p, end in ends.items() if end > 0
        }

    wait_for(reported, 90, "restore reports up to the changelog's end")
    reports = parse_reports(groups.committed_metadata(restore_group(names.app)))
    for report in reports:
        assert report.changelog == changelog
        assert report.pid == second.pid and report.done and report.start == 0
        assert report.target == ends[report.partition]
    assert status_json(bootstrap_servers, names.app)["restores"] == []  # all finished


def test_status_shows_an_unfinished_restore(
    names: Names, settings: Settings, admin: TopicAdmin, bootstrap_servers: str
) -> None:
    produce(settings, names.source, [("k", b'{"n": 1}')])
    changelog = f"{names.app}-counts-changelog"
    admin.create([TopicSpec(changelog, 4)])
    at = int(time.time() * 1000)
    metadata = {"start": 100, "target": 500, "host": "box", "pid": 7, "at": at}
    reporter = make_consumer(settings, restore_group(names.app))
    try:
        # As a worker cut short reports it: an assign-only consumer commits with metadata.
        offsets = [TopicPartition(changelog, 2, 200, metadata=orjson.dumps(metadata).decode())]
        reporter.commit(offsets=offsets, asynchronous=False)
        group = CliRunner().invoke(
            cli, ["reset", names.app, "--to", "latest", "-t", names.source, "-b", bootstrap_servers]
        )
        assert group.exit_code == 0, group.output
    finally:
        reporter.close()
    status = status_json(bootstrap_servers, names.app)
    assert status["restores"] == [
        {
            "changelog": changelog,
            "partition": 2,
            "start": 100,
            "position": 200,
            "target": 500,
            "host": "box",
            "pid": 7,
            "reported_at": at,
        }
    ]
    table = CliRunner().invoke(cli, ["status", names.app, "-b", bootstrap_servers])
    assert table.exit_code == 0, table.output
    assert "restores" in table.output and "25%" in table.output and "box pid 7" in table.output
