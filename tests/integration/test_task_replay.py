"""A task that keeps failing: its attempts follow the backoff, it is dead-lettered once
with its story, and ``millstream dlq replay`` runs it again once its cause is gone
(and only once, however often the same dead letter is replayed)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from support import Consumed, Names, WorkerProcess, consume_all, wait_for
from typer.testing import CliRunner

from millstream import App
from millstream.cli import cli
from millstream.config import Settings
from millstream.errors import TaskFailed

APP = "tests.integration.apps.replayed_tasks:app"
#: The backoff of attempts 2, 3 and 4 (retries=3, backoff=1.0), before jitter.
BACKOFF = (1.0, 2.0, 4.0)
#: How late an attempt may run: the delay tier pauses until the head record is due
#: (up to the worker's poll interval late), and a wait under 1 s is held by the
#: dispatcher; the commit interval does not delay at-least-once forwarding.
LATE = 1.5


def _attempts(log: Path, task_id: str) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    lines = [json.loads(line) for line in log.read_text().splitlines() if line]
    return [line for line in lines if line["id"] == task_id]


def _replies(settings: Settings, names: Names, task_id: str) -> list[dict[str, Any]]:
    found: list[Consumed] = consume_all(settings, f"{names.app}-replies")
    return [r.json() for r in found if r.key == task_id.encode()]


def test_a_dead_letter_replayed_after_its_cause_is_gone_succeeds_once(
    names: Names, bootstrap_servers: str, settings: Settings, tmp_path: Path
) -> None:
    log, cause = tmp_path / "attempts.jsonl", tmp_path / "cause"
    cause.touch()
    env = names.env(
        bootstrap_servers, tmp_path / "state", TEST_TASK_LOG=str(log), TEST_CAUSE=str(cause)
    )
    app = App(names.app, bootstrap_servers=bootstrap_servers)

    @app.task(partitions=1, retries=3)
    def fragile(order: str) -> str:  # runs on the worker only
        return order

    worker = WorkerProcess(APP, env, tmp_path / "worker.log")
    try:
        handle = fragile.send("o-1")
        with pytest.raises(TaskFailed) as failed:
            handle.result(timeout=60)
        assert failed.value.type == "builtins.ConnectionError"
        assert "payment service is down for o-1" in failed.value.message
        assert "in fragile" in failed.value.traceback

        attempts = _attempts(log, handle.id)
        assert [a["attempt"] for a in attempts] == [0, 1, 2, 3]
        gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
        for gap, backoff in zip(gaps, BACKOFF, strict=True):
            assert backoff <= gap <= backoff * 1.1 + LATE, gaps

        [dead] = consume_all(settings, names.dlq)
        headers = {k: v.decode() for k, v in dead.headers.items()}
        assert headers["millstream.task.id"] == handle.id
        assert headers["millstream.task.name"] == "fragile"
        assert headers["millstream.task.attempts"] == "4"
        assert headers["millstream.error.type"] == "builtins.ConnectionError"
        assert headers["millstream.error"].startswith("ConnectionError: the payment service")
        assert "raise ConnectionError" in headers["millstream.error.traceback"]

        cause.unlink()
        runner = CliRunner()
        cli_env = {"MILLSTREAM_BOOTSTRAP_SERVERS": bootstrap_servers, "COLUMNS": "200"}
        replayed = runner.invoke(cli, ["dlq", "replay", names.app], env=cli_env)
        assert replayed.exit_code == 0, replayed.output
        wait_for(
            lambda: (
                worker.running()
                and any(r["status"] == "succeeded" for r in _replies(settings, names, handle.id))
            ),
            30,
            "the replayed task to succeed",
        )
        assert [a["attempt"] for a in _attempts(log, handle.id)] == [0, 1, 2, 3, 0]

        # The same dead letter replayed again is the same task: the worker answers with
        # the recorded reply instead of running it.
        again = runner.invoke(cli, ["dlq", "replay", names.app], env=cli_env)
        assert again.exit_code == 0, again.output
        wait_for(
            lambda: (
                worker.running()
                and sum(r["status"] == "succeeded" for r in _replies(settings, names, handle.id))
                == 2
            ),
            30,
            "the recorded reply to the second replay",
        )
        assert len(_attempts(log, handle.id)) == 5
        assert worker.stop() == 0
    finally:
        worker.kill()
