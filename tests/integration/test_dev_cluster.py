"""`millstream dev`: real clusters of its own, in temporary directories on ports 29100+.

These tests never touch the session cluster (or anything on 19092): each one that
starts Kafka uses a fresh ``local_dir`` and stops its cluster in teardown. Its ports
are reserved (``support.reserve_base_port``) for as long as the test runs, so that
pytest sessions running side by side on one machine never pick the same ones.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import reserve_base_port, wait_for

from millstream.config import Settings, load_settings
from millstream.dev import LocalCluster
from millstream.errors import LocalClusterError, TopicNotFoundError
from millstream.kafka import TopicAdmin, TopicInfo, TopicSpec
from millstream.kafka.clients import make_admin

MILLSTREAM = str(Path(sys.executable).parent / "millstream")


@dataclass
class DevEnv:
    """A private local cluster location: settings for in-process use, env for the CLI."""

    settings: Settings
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MILLSTREAM, "dev", *args], env=self.env, capture_output=True, text=True, timeout=300
        )


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[[int], DevEnv]]:
    """Makes a location for an ``nodes``-node cluster on ports reserved until teardown."""
    with ExitStack() as reservations:

        def make(nodes: int) -> DevEnv:
            port = reserve_base_port(nodes, reservations)
            env = {
                **os.environ,
                "MILLSTREAM_LOCAL_DIR": str(tmp_path / "local"),
                "MILLSTREAM_DEV_PORT": str(port),
            }
            return DevEnv(load_settings(local_dir=tmp_path / "local", dev_port=port), env)

        yield make


@pytest.fixture
def dev_env(make_env: Callable[[int], DevEnv]) -> Iterator[DevEnv]:
    """A 1-node location; whatever runs there is stopped and wiped afterwards."""
    env = make_env(1)
    try:
        yield env
    finally:
        LocalCluster(env.settings).down(wipe=True)


def described(admin: TopicAdmin, name: str, timeout: float = 20.0) -> TopicInfo:
    """``admin.describe(name)`` once every broker knows the topic (metadata spreads lazily)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.describe(name)
        except TopicNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def last_line(text: str) -> str:
    return text.rstrip("\n").rsplit("\n", 1)[-1]


@pytest.mark.timeout(300)
def test_up_twice_is_harmless_and_prints_the_same_bootstrap(dev_env: DevEnv) -> None:
    first = dev_env.run("up")
    assert first.returncode == 0, first.stderr
    second = dev_env.run("up")
    assert second.returncode == 0, second.stderr

    bootstrap = f"127.0.0.1:{dev_env.settings.dev_port}"
    assert last_line(first.stdout) == last_line(second.stdout) == bootstrap
    assert "already running" in second.stderr
    status = dev_env.run("status", "--bootstrap")
    assert (status.returncode, status.stdout.strip()) == (0, bootstrap)
    assert TopicAdmin(load_settings(bootstrap_servers=bootstrap)).broker_count() == 1


@pytest.mark.timeout(300)
def test_down_keeps_data_and_status_reports_not_running(dev_env: DevEnv) -> None:
    assert dev_env.run("up").returncode == 0
    node = LocalCluster(dev_env.settings).files.node(1)

    down = dev_env.run("down")

    assert down.returncode == 0, down.stderr
    assert node.is_formatted()
    assert not node.pid_file.exists()
    status = dev_env.run("status", "--bootstrap")
    assert status.returncode == 1
    assert status.stdout == ""
    assert "no local cluster is running" in status.stderr
    assert dev_env.run("down", "--wipe").returncode == 0
    assert not node.directory.exists()


@pytest.mark.timeout(300)
def test_a_stopped_node_can_be_started_again(dev_env: DevEnv) -> None:
    cluster = LocalCluster(dev_env.settings)
    cluster.up(1)

    assert cluster.stop_node(1, kill=True)
    assert not cluster.status().running
    cluster.start_node(1)

    assert cluster.status().healthy
    assert (
        TopicAdmin(load_settings(bootstrap_servers=cluster.bootstrap_servers)).broker_count() == 1
    )


def test_a_port_taken_by_another_process_is_named(make_env: Callable[[int], DevEnv]) -> None:
    env = make_env(1)
    with socket.socket() as squatter:
        # SO_REUSEADDR: the port may be in TIME_WAIT after an earlier test's cluster.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", env.settings.dev_port))
        squatter.listen()

        with pytest.raises(LocalClusterError) as caught:
            LocalCluster(env.settings).up(1)

    message = str(caught.value)
    assert f"port {env.settings.dev_port} (broker of node 1)" in message
    assert "in use by another process" in message
    assert "MILLSTREAM_DEV_PORT" in message


def test_no_java_is_a_clear_one_line_error(
    make_env: Callable[[int], DevEnv], tmp_path: Path
) -> None:
    env = make_env(1)
    env.env["PATH"] = str(tmp_path / "empty-bin")
    env.env.pop("JAVA_HOME", None)

    result = env.run("up")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "error: `java` not found on PATH" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_node_counts_other_than_1_and_3_are_refused(make_env: Callable[[int], DevEnv]) -> None:
    result = make_env(1).run("up", "--nodes", "2")

    assert result.returncode == 1
    assert "--nodes must be 1 or 3" in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_three_nodes_survive_the_loss_of_one(make_env: Callable[[int], DevEnv]) -> None:
    """A topic replicated 3 ways stays described and led while a node is dead.

    Until the controller fences a killed node (``broker.session.timeout.ms``, 6 s in the
    local cluster) metadata still names it among the live brokers, and sometimes as the
    controller that a topic's DescribeConfigs goes to: describing the topic over and over
    in that window is what catches an admin call that waits on the dead node.
    """
    env = make_env(3)
    cluster = LocalCluster(env.settings)
    try:
        bootstrap = cluster.up(3)
        settings = load_settings(bootstrap_servers=bootstrap)
        admin = TopicAdmin(settings)
        metadata = Metadata(settings)
        assert admin.broker_count() == 3
        admin.create([TopicSpec("replicated", partitions=3)])
        assert described(admin, "replicated").replication == 3

        cluster.stop_node(2, kill=True)
        assert [n.alive for n in cluster.status().nodes] == [True, False, True]
        fenced_by = time.monotonic() + 60
        while 2 in metadata.brokers():
            assert described(admin, "replicated").partitions == 3
            assert time.monotonic() < fenced_by, "node 2 was not fenced within 60s"
        assert described(admin, "replicated").partitions == 3
        wait_for(
            lambda: set(metadata.leaders("replicated").values()) <= {1, 3},
            60,
            "every partition of 'replicated' led by node 1 or 3",
            observed=lambda: f"leaders by partition: {metadata.leaders('replicated')}",
        )

        cluster.start_node(2)
        assert cluster.status().healthy
        wait_for(
            lambda: metadata.brokers() == {1, 2, 3},
            60,
            "node 2 back among the brokers",
            observed=lambda: f"brokers: {sorted(metadata.brokers())}",
        )
        assert admin.broker_count() == 3
    finally:
        cluster.down(wipe=True)


class Metadata:
    """What the cluster's metadata says about brokers and leaders, fresh on every call."""

    def __init__(self, settings: Settings) -> None:
        self._client = make_admin(settings)
        self._timeout = settings.client_timeout

    def brokers(self) -> set[int]:
        """Ids of the live brokers (a killed node stays among them until it is fenced)."""
        return set(self._client.list_topics(timeout=self._timeout).brokers)

    def leaders(self, topic: str) -> dict[int, int]:
        """Partition -> leader id of ``topic`` (-1 while a partition has none)."""
        partitions = self._client.list_topics(topic, timeout=self._timeout).topics[topic].partitions
        return {p.id: p.leader for p in partitions.values()}
