"""`millstream worker --log-format`: a bad value is refused, and in JSON mode even the
worker's failure is one JSON line."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import orjson
import pytest
from typer.testing import CliRunner

from millstream.cli import cli

STATELESS = "tests.integration.apps.stateless:app"


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stateless test app on a port where no broker listens; the root logger's
    handlers put back afterwards (the command configures logging)."""
    for name, value in {
        "TEST_APP_ID": "logs-app",
        "TEST_IN": "logs-in",
        "TEST_OUT": "logs-out",
        "MILLSTREAM_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "MILLSTREAM_CLIENT_TIMEOUT": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MILLSTREAM_LOG_FORMAT", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def test_an_unknown_log_format_is_refused(app_env: None) -> None:
    result = CliRunner().invoke(cli, ["worker", STATELESS, "--log-format", "xml"])
    assert result.exit_code == 2
    assert "--log-format" in result.output and "text or json" in result.output


def test_a_failing_worker_logs_its_error_as_one_json_line(app_env: None) -> None:
    result = CliRunner().invoke(cli, ["worker", STATELESS, "--log-format", "json"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines, "nothing logged"
    entries = [orjson.loads(line) for line in lines]
    error = entries[-1]
    assert error["level"] == "ERROR"
    assert error["app_id"] == "logs-app"
    assert error["error"] == "BrokerUnreachableError"
    assert "127.0.0.1:1" in str(error["message"])
