"""The millstream pytest plugin: a real Kafka for an application's tests.

Installing millstream registers it (entry point ``pytest11``, name ``millstream``;
``pytest -p no:millstream`` turns it off). It provides one session-scoped fixture::

    def test_alerts(kafka_bootstrap: str) -> None:
        app = App("fraud", bootstrap_servers=kafka_bootstrap)
        ...

``kafka_bootstrap`` is the bootstrap servers of one cluster for the whole session,
the first of:

1. ``MILLSTREAM_BOOTSTRAP_SERVERS``, when set: a cluster you run. Nothing is
   started or stopped.
2. A Kafka container, when testcontainers is installed (``millstream[testcontainers]``)
   and a Docker engine answers: ``apache/kafka`` at the version of the local cluster,
   one KRaft node configured like it. Removed at the end of the session.
3. The local cluster of ``millstream dev`` (Java 17+ and Maven needed): reused when
   it runs, left running then; else started and stopped at the end of the session.
   ``MILLSTREAM_LOCAL_DIR`` and ``MILLSTREAM_DEV_PORT`` place it; a relative
   ``MILLSTREAM_LOCAL_DIR`` is relative to pytest's root directory.

When none can be had the fixture fails the tests that use it, saying why. The
plugin imports no Docker client until the fixture is used, and asks Docker nothing
when ``MILLSTREAM_BOOTSTRAP_SERVERS`` is set.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import pytest

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

KafkaSource = Literal["env", "container", "local"]

BOOTSTRAP_ENV = "MILLSTREAM_BOOTSTRAP_SERVERS"
KAFKA_IMAGE = "apache/kafka"
#: Seconds to wait for a Docker engine's answer, and for the container's broker.
DOCKER_PING_TIMEOUT = 5.0
CONTAINER_START_TIMEOUT = 120
#: The container's listeners: clients (mapped to a free port of the Docker host),
#: the broker's own, and the controller's.
CLIENT_PORT = 9092
_BROKER_PORT = 9093
_CONTROLLER_PORT = 9094
_START_SCRIPT = "/tmp/millstream-start.sh"
_LOG_DIR = "/tmp/kraft-combined-logs"
_CLUSTER_ID = "bWlsbHN0cmVhbS10ZXN0cw"


def choose_source(environ: Mapping[str, str], docker_answers: Callable[[], bool]) -> KafkaSource:
    """Where the session's Kafka comes from; ``docker_answers`` is asked only when
    ``MILLSTREAM_BOOTSTRAP_SERVERS`` is not set."""
    if environ.get(BOOTSTRAP_ENV, "").strip():
        return "env"
    if docker_answers():
        return "container"
    return "local"


def docker_answers(timeout: float = DOCKER_PING_TIMEOUT) -> bool:
    """Whether testcontainers is installed and its Docker engine answers a ping in time.

    Asks the engine testcontainers would use (``DOCKER_HOST``, the Docker context or
    ``~/.testcontainers.properties``). Never raises: no engine means no.
    """
    try:
        from testcontainers.core.docker_client import DockerClient
    except ImportError:
        return False
    try:
        return bool(DockerClient(timeout=timeout).client.ping())
    except Exception:  # no socket, no permission, no answer: all mean no Docker here
        return False


class SessionKafka(Protocol):
    """A cluster the fixture brings up for the session and takes down after it."""

    def start(self) -> str:
        """Bring the cluster up; return its bootstrap servers."""
        ...

    def stop(self) -> None:
        """Undo what :meth:`start` did (safe after a failed or no start)."""
        ...


class _Status(Protocol):
    @property
    def running(self) -> bool: ...


class DevCluster(Protocol):
    """What the fixture needs of :class:`millstream.dev.LocalCluster`."""

    def status(self) -> _Status: ...

    def up(self, nodes: int | None = None) -> str: ...

    def down(self, *, wipe: bool = False) -> list[int]: ...


class LocalClusterKafka:
    """The local cluster of ``millstream dev``, stopped at the end only if started here."""

    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster
        self._started_here = False

    def start(self) -> str:
        self._started_here = not self.cluster.status().running
        return self.cluster.up()

    def stop(self) -> None:
        if self._started_here:
            self.cluster.down()
            self._started_here = False


def broker_environment() -> dict[str, str]:
    """The ``KAFKA_*`` environment of the container's broker: the local cluster's
    one-node ``server.properties`` (same groups, timeouts and internal topics), with
    listeners for a container. The advertised listeners are set at start, once the
    client port's mapping is known."""
    from millstream.dev.properties import Topology, parse_properties, render_properties

    properties = parse_properties(render_properties(Topology(1, CLIENT_PORT), 1, Path(_LOG_DIR)))
    properties.pop("advertised.listeners")
    properties.update(
        {
            "listeners": f"PLAINTEXT://0.0.0.0:{CLIENT_PORT},BROKER://0.0.0.0:{_BROKER_PORT},"
            f"CONTROLLER://0.0.0.0:{_CONTROLLER_PORT}",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "inter.broker.listener.name": "BROKER",
            "controller.quorum.voters": f"1@localhost:{_CONTROLLER_PORT}",
        }
    )
    environment = {"CLUSTER_ID": _CLUSTER_ID}
    for key, value in properties.items():
        # The image's convention: '.' -> '_', '_' -> '__', '-' -> '___', upper case.
        name = key.replace("-", "___").replace("_", "__").replace(".", "_").upper()
        environment[f"KAFKA_{name}"] = value
    return environment


def start_script(host: str, port: int) -> str:
    """The container's start command, once its client port is known as ``host:port``."""
    return (
        f"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://{host}:{port},"
        f"BROKER://localhost:{_BROKER_PORT}\n"
        "exec /etc/kafka/docker/run\n"
    )


class ContainerKafka:
    """One ``apache/kafka`` container through testcontainers, removed by :meth:`stop`.

    The container waits for its start script, which the fixture writes once Docker
    has mapped the client port, so that the broker advertises the address a client
    on this machine reaches it by.
    """

    def __init__(self, version: str) -> None:
        self.image = f"{KAFKA_IMAGE}:{version}"
        self._container: DockerContainer | None = None

    def start(self) -> str:
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.wait_strategies import LogMessageWaitStrategy

        container = DockerContainer(self.image)
        for name, value in broker_environment().items():
            container.with_env(name, value)
        container.with_exposed_ports(CLIENT_PORT)
        container.with_command(
            ["sh", "-c", f"while [ ! -f {_START_SCRIPT} ]; do sleep 0.1; done; . {_START_SCRIPT}"]
        )
        self._container = container
        container.start()
        host = container.get_container_host_ip()
        port = container.get_exposed_port(CLIENT_PORT)
        _copy_into(container, _START_SCRIPT, start_script(host, port))
        waiting = LogMessageWaitStrategy("Kafka Server started")
        waiting.with_startup_timeout(CONTAINER_START_TIMEOUT).wait_until_ready(container)
        return f"{host}:{port}"

    def stop(self) -> None:
        if self._container is not None:
            self._container.stop()
            self._container = None


def _copy_into(container: DockerContainer, path: str, text: str) -> None:
    data = text.encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        tar.addfile(info, io.BytesIO(data))
    container.get_wrapped_container().put_archive("/", archive.getvalue())


def session_kafka(source: KafkaSource, rootpath: Path) -> SessionKafka:
    """The cluster to bring up for ``source`` ("container" or "local")."""
    from millstream.config import load_settings
    from millstream.dev import LocalCluster, packaged_kafka_version

    settings = load_settings()
    if source == "container":
        return ContainerKafka(settings.dev_kafka_version or packaged_kafka_version())
    if not settings.local_dir.is_absolute():
        settings = settings.model_copy(update={"local_dir": rootpath / settings.local_dir})
    return LocalClusterKafka(LocalCluster(settings))


def _start(kafka: SessionKafka, source: KafkaSource) -> str:
    """``kafka.start()``, or a failed test that says why and what else would do."""
    try:
        return kafka.start()
    except Exception as exc:
        kafka.stop()
        what = "a Kafka container" if source == "container" else "the local Kafka cluster"
        failure = (
            f"kafka_bootstrap: cannot start {what}: {exc}\n"
            f"Set {BOOTSTRAP_ENV} to use a running cluster, or install "
            "millstream[testcontainers] where a Docker engine runs, or make "
            "`millstream dev up` work (Java 17+, Maven)."
        )
    pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def kafka_bootstrap(pytestconfig: pytest.Config) -> Iterator[str]:
    """Bootstrap servers of a real Kafka cluster for this test session.

    ``MILLSTREAM_BOOTSTRAP_SERVERS`` if set, else a Kafka container when
    testcontainers is installed and Docker answers, else the local cluster of
    ``millstream dev``. What the fixture started, it stops when the session ends.
    """
    source = choose_source(os.environ, docker_answers)
    if source == "env":
        yield os.environ[BOOTSTRAP_ENV].strip()
        return
    kafka = session_kafka(source, pytestconfig.rootpath)
    bootstrap = _start(kafka, source)
    try:
        yield bootstrap
    finally:
        kafka.stop()
