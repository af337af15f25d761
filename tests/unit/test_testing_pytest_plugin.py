"""The pytest plugin's kafka_bootstrap: which Kafka it picks, and what it starts and stops.

No Docker and no broker here: the Docker engine and the local cluster are stand-ins.
tests/integration/test_plugin_on_local_cluster.py runs the plugin in a pytest of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from support import run_pytest

from millstream.dev import LocalCluster, packaged_kafka_version
from millstream.testing.pytest_plugin import (
    ContainerKafka,
    LocalClusterKafka,
    broker_environment,
    choose_source,
    docker_answers,
    session_kafka,
    start_script,
)


def never_asked() -> bool:
    raise AssertionError("Docker must not be asked when the environment names a cluster")


def test_the_environment_wins_and_docker_is_not_asked() -> None:
    environ = {"MILLSTREAM_BOOTSTRAP_SERVERS": "kafka-1:9092"}
    assert choose_source(environ, never_asked) == "env"


@pytest.mark.parametrize("environ", [{}, {"MILLSTREAM_BOOTSTRAP_SERVERS": " "}])
def test_a_container_when_docker_answers(environ: dict[str, str]) -> None:
    assert choose_source(environ, lambda: True) == "container"


def test_else_the_local_cluster() -> None:
    assert choose_source({}, lambda: False) == "local"


class FakeDockerClient:
    answers: Any = True

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.client = self

    def ping(self) -> bool:
        if isinstance(self.answers, Exception):
            raise self.answers
        return bool(self.answers)


@pytest.fixture
def docker(monkeypatch: pytest.MonkeyPatch) -> type[FakeDockerClient]:
    module = types.ModuleType("testcontainers.core.docker_client")
    module.DockerClient = FakeDockerClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "testcontainers.core.docker_client", module)
    return FakeDockerClient


def test_docker_answers_when_the_engine_pings_back(
    docker: type[FakeDockerClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker, "answers", True)
    assert docker_answers()


@pytest.mark.parametrize("answer", [False, ConnectionError("no socket"), PermissionError()])
def test_no_docker_when_the_engine_does_not_answer(
    docker: type[FakeDockerClient], monkeypatch: pytest.MonkeyPatch, answer: object
) -> None:
    monkeypatch.setattr(docker, "answers", answer)
    assert not docker_answers()


def test_no_docker_without_testcontainers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "testcontainers.core.docker_client", None)
    assert not docker_answers()


class FakeCluster:
    """Stands in for millstream.dev.LocalCluster."""

    def __init__(self, running: bool, fails: bool = False) -> None:
        self.running = running
        self.fails = fails
        self.calls: list[str] = []

    def status(self) -> FakeCluster:
        return self

    def up(self, nodes: int | None = None) -> str:
        self.calls.append("up")
        if self.fails:
            raise RuntimeError("a port is taken")
        self.running = True
        return "127.0.0.1:43092"

    def down(self, *, wipe: bool = False) -> list[int]:
        self.calls.append("down")
        self.running = False
        return [1]


def test_a_local_cluster_started_for_the_session_is_stopped_after_it() -> None:
    cluster = FakeCluster(running=False)
    kafka = LocalClusterKafka(cluster)
    assert kafka.start() == "127.0.0.1:43092"
    kafka.stop()
    kafka.stop()
    assert cluster.calls == ["up", "down"]


def test_a_running_local_cluster_is_reused_and_left_running() -> None:
    cluster = FakeCluster(running=True)
    kafka = LocalClusterKafka(cluster)
    assert kafka.start() == "127.0.0.1:43092"
    kafka.stop()
    assert cluster.calls == ["up"] and cluster.running


def test_a_local_cluster_that_failed_to_start_is_stopped() -> None:
    cluster = FakeCluster(running=False, fails=True)
    kafka = LocalClusterKafka(cluster)
    with pytest.raises(RuntimeError):
        kafka.start()
    kafka.stop()
    assert cluster.calls == ["up", "down"]


def test_the_local_cluster_lives_under_the_pytest_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MILLSTREAM_LOCAL_DIR", "state-here")
    kafka = session_kafka("local", tmp_path)
    assert isinstance(kafka, LocalClusterKafka)
    assert isinstance(kafka.cluster, LocalCluster)
    assert kafka.cluster.files.root == tmp_path / "state-here" / "kafka"


def test_the_container_runs_the_local_cluster_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MILLSTREAM_DEV_KAFKA_VERSION", raising=False)
    kafka = session_kafka("container", Path("."))
    assert isinstance(kafka, ContainerKafka)
    assert kafka.image == f"apache/kafka:{packaged_kafka_version()}"
    monkeypatch.setenv("MILLSTREAM_DEV_KAFKA_VERSION", "4.2.0")
    kafka = session_kafka("container", Path("."))
    assert isinstance(kafka, ContainerKafka)
    assert kafka.image == "apache/kafka:4.2.0"


def test_the_container_broker_is_configured_like_the_local_cluster() -> None:
    environment = broker_environment()
    assert environment["KAFKA_NODE_ID"] == "1"
    assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for internal in ("OFFSETS_TOPIC", "TRANSACTION_STATE_LOG", "SHARE_COORDINATOR_STATE_TOPIC"):
        assert environment[f"KAFKA_{internal}_REPLICATION_FACTOR"] == "1"
    assert environment["KAFKA_GROUP_CONSUMER_SESSION_TIMEOUT_MS"] == "6000"
    assert environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert environment["KAFKA_LISTENERS"].startswith("PLAINTEXT://0.0.0.0:9092,")
    assert "KAFKA_ADVERTISED_LISTENERS" not in environment
    assert len(environment["CLUSTER_ID"]) == 22


def test_the_container_advertises_the_mapped_port() -> None:
    script = start_script("192.168.5.2", 55001)
    assert "KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://192.168.5.2:55001," in script
    assert script.rstrip().endswith("exec /etc/kafka/docker/run")


def test_installing_millstream_registers_the_plugin(tmp_path: Path) -> None:
    """A pytest run of its own, in an empty directory, has kafka_bootstrap."""
    (tmp_path / "test_uses_kafka.py").write_text(
        "def test_bootstrap(kafka_bootstrap):\n"
        "    assert kafka_bootstrap == 'kafka-1.example:9092,kafka-2.example:9092'\n"
    )
    env = {
        **os.environ,
        "MILLSTREAM_BOOTSTRAP_SERVERS": " kafka-1.example:9092,kafka-2.example:9092 ",
    }
    result = run_pytest(tmp_path, env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_plugin_imports_no_docker_client_until_used(tmp_path: Path) -> None:
    code = (
        "import sys, millstream.testing.pytest_plugin\n"
        "print([m for m in ('testcontainers', 'docker') if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]"
