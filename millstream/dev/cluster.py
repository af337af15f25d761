"""The local development cluster: 1 or 3 combined KRaft nodes on 127.0.0.1.

Nodes are detached JVM processes recorded by pid file, so they outlive the command
that started them and any later command (``status``, ``down``, a test session) can
find them. Every operation that changes the cluster holds a file lock, so
concurrent ``up`` calls (parallel test workers) start it once.
"""

from __future__ import annotations

import base64
import fcntl
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from millstream.config import KAFKA_FILES, Settings, load_settings
from millstream.dev import process
from millstream.dev.assembly import BrokerJars, Progress, check_java, packaged_kafka_version
from millstream.dev.layout import ClusterFiles, ClusterState, NodeFiles
from millstream.dev.properties import HOST, Topology, render_properties
from millstream.dev.readiness import ReadinessProbe, plaintext
from millstream.dev.security import ClusterSecurity, Credentials
from millstream.errors import LocalClusterError

#: Node counts ``up`` accepts: one node, or three (replication 3, min ISR 2).
SUPPORTED_NODES = (1, 3)
#: Seconds a node may take for a clean shutdown after SIGTERM before it gets SIGKILL.
STOP_TIMEOUT = 30.0
_LOG_TAIL = 20
_FEATURE = re.compile(r"name='([\w.]+)', featureLevel=(\d+)")


@dataclass(frozen=True)
class NodeStatus:
    """One node as ``status`` sees it."""

    node: int
    pid: int | None
    broker_port: int
    controller_port: int
    alive: bool
    log_path: Path


@dataclass(frozen=True)
class ClusterStatus:
    """The whole cluster as ``status`` sees it; ``nodes`` is empty when none was set up."""

    nodes: tuple[NodeStatus, ...]
    bootstrap_servers: str
    kafka_version: str | None
    directory: Path

    @property
    def running(self) -> bool:
        """At least one node is alive (clients can connect)."""
        return any(n.alive for n in self.nodes)

    @property
    def healthy(self) -> bool:
        """Every node is alive."""
        return bool(self.nodes) and all(n.alive for n in self.nodes)


class LocalCluster:
    """The Kafka cluster under ``settings.local_dir / "kafka"``, ports from ``dev_port``.

    Methods block until their effect is reached (bounded by the settings' timeouts)
    and raise :class:`LocalClusterError` with an actionable message.
    """

    def __init__(
        self, settings: Settings | None = None, *, progress: Progress | None = None
    ) -> None:
        self._settings = settings or load_settings()
        self.files = ClusterFiles(Path(self._settings.local_dir) / "kafka")
        self.security = ClusterSecurity(self.files.root)
        self._progress = progress or (lambda _message: None)

    @property
    def topology(self) -> Topology:
        """Nodes and ports: as recorded while the cluster runs, else as configured."""
        state = self.files.read_state()
        if state is None:
            return Topology(1, self._settings.dev_port)
        if self._running_nodes(state.nodes):
            return Topology(state.nodes, state.base_port)
        return Topology(state.nodes, self._settings.dev_port)

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` list of every node's broker listener."""
        return self.topology.bootstrap_servers

    def log_path(self, node: int = 1) -> Path:
        """The ``server.log`` of ``node``; raises LocalClusterError for an unknown node."""
        self.topology.broker_port(node)
        return self.files.node(node).log

    def up(
        self, nodes: int | None = None, *, security: str | None = None, app_id: str | None = None
    ) -> str:
        """Bring the cluster up with ``nodes`` nodes and return its bootstrap servers.

        ``nodes=None`` means as many as the cluster had (1 for a new one); ``security``
        ``"sasl_ssl"`` secures a new cluster (millstream.dev.security) with an app user
        for ``app_id``, None keeps what the cluster was formatted with. Idempotent:
        a cluster already running with that many nodes is only checked, and its
        stopped nodes are started. Storage is formatted once; data persists across
        ``down``/``up``. Blocks until the cluster serves metadata and can create and
        delete a topic (at most ``settings.dev_start_timeout`` seconds).

        Raises:
            LocalClusterError: unsupported node count; running with another node
                count, port or security; Java/Maven (or openssl, when secured) missing
                or too old; a port taken by another process; a node exited during
                startup; not ready in time.
        """
        with self._locked():
            state = self.files.read_state()
            count = nodes or (state.nodes if state else 1)
            if count not in SUPPORTED_NODES:
                raise LocalClusterError(f"--nodes must be 1 or 3, not {count}")
            formatted = state is not None and self._any_formatted(state.nodes)
            mode = self.security.planned(state.security if state else None, security, formatted)
            running = self._running_nodes(state.nodes) if state else []
            topology = self._planned_topology(state, running, count)
            missing = [n for n in topology.node_ids if n not in running]
            if not missing:
                self._progress(f"local cluster already running ({count} node(s))")
            else:
                self._start_nodes(topology, missing, state, mode, app_id)
            self._progress("waiting for the cluster to serve requests")
            self._probe(topology).wait(missing, self._settings.dev_start_timeout)
            if mode != "plaintext":
                self.security.secure(self._admin_settings(topology), topology.bootstrap_servers)
                self._progress("ACLs granted to the app user (`millstream dev up` prints them)")
        self._progress(f"local cluster ready: {topology.bootstrap_servers}")
        return topology.bootstrap_servers

    def credentials(self) -> Credentials | None:
        """The users and CA of a secured cluster; None for a plaintext one."""
        state = self.files.read_state()
        if state is None or state.security == "plaintext":
            return None
        return self.security.read()

    def down(self, *, wipe: bool = False) -> list[int]:
        """Stop every node this cluster started; with ``wipe`` also delete data and logs.

        SIGTERM first, SIGKILL for a node still alive after STOP_TIMEOUT seconds. The
        jar cache is kept even with ``wipe``. Returns the ids of the nodes stopped.
        """
        with self._locked():
            state = self.files.read_state()
            count = state.nodes if state else len(self.files.node_dirs())
            stopped = self._stop_nodes(self._running_nodes(count), kill=False)
            for directory in self.files.node_dirs():
                NodeFiles(directory).clear_pid()
            if wipe:
                for directory in self.files.node_dirs():
                    shutil.rmtree(directory)
                self.files.state_file.unlink(missing_ok=True)
                shutil.rmtree(self.security.directory, ignore_errors=True)
                self._progress(f"wiped the local cluster's data under {self.files.root}")
        return stopped

    def stop_node(self, node: int, *, kill: bool = False) -> bool:
        """Stop one node (SIGTERM, or SIGKILL at once when ``kill``), keeping its data.

        Returns False when it was not running. Raises LocalClusterError for an unknown node.
        """
        with self._locked():
            self._recorded_topology().broker_port(node)
            if self._live_pid(node) is None:
                return False
            self._stop_nodes([node], kill)
            return True

    def start_node(self, node: int, *, wait: bool = True) -> None:
        """Start one stopped node of a cluster brought up before; no-op if it runs.

        With ``wait`` blocks until the cluster serves requests with every node.

        Raises:
            LocalClusterError: no cluster was brought up here, unknown node, or the
                same startup failures as :meth:`up`.
        """
        with self._locked():
            topology = self._recorded_topology()
            topology.broker_port(node)
            if self._live_pid(node) is not None:
                return
            state = self.files.read_state()
            mode = state.security if state else "plaintext"
            self._start_nodes(topology, [node], state, mode, None)
            if wait:
                self._probe(topology).wait([node], self._settings.dev_start_timeout)

    def status(self) -> ClusterStatus:
        """Nodes, pids, ports and liveness, without contacting the brokers."""
        state = self.files.read_state()
        topology = self.topology
        nodes = tuple(self._node_status(topology, n) for n in topology.node_ids) if state else ()
        version = state.kafka_version if state else None
        return ClusterStatus(nodes, topology.bootstrap_servers, version, self.files.root)

    # -- starting ----------------------------------------------------------------

    def _planned_topology(
        self, state: ClusterState | None, running: list[int], nodes: int
    ) -> Topology:
        if running and state is not None:
            if state.nodes != nodes:
                raise LocalClusterError(
                    f"the local cluster is running with {state.nodes} node(s); run "
                    f"`millstream dev down` first to start it with {nodes}"
                )
            if state.base_port != self._settings.dev_port:
                raise LocalClusterError(
                    f"the local cluster in {self.files.root} is running on port "
                    f"{state.base_port}, not MILLSTREAM_DEV_PORT={self._settings.dev_port}; "
                    "run `millstream dev down` first to move it"
                )
        elif state is not None and state.nodes != nodes and self._any_formatted(state.nodes):
            raise LocalClusterError(
                f"{self.files.root} holds the data of a {state.nodes}-node cluster; run "
                f"`millstream dev down --wipe` first to start one with {nodes} node(s)"
            )
        return Topology(nodes, self._settings.dev_port)

    def _start_nodes(
        self,
        topology: Topology,
        nodes: list[int],
        state: ClusterState | None,
        security: str,
        app_id: str | None,
    ) -> None:
        java = check_java()
        process.check_ports(topology, nodes, HOST)
        version = self._settings.dev_kafka_version or packaged_kafka_version()
        jars = BrokerJars(self.files.libs, version)
        jars.ensure(self._progress)
        cluster_id = state.cluster_id if state else _new_cluster_id()
        credentials = None
        if security != "plaintext":
            credentials = self.security.ensure(app_id)
            self._progress(f"secured with SASL_SSL: CA {credentials.ca_location}")
        self.files.write_state(
            ClusterState(topology.nodes, topology.base_port, cluster_id, version, security)
        )
        for node in topology.node_ids:
            self._render(topology, node, credentials)
        for node in topology.node_ids:
            if not self.files.node(node).is_formatted():
                self._format(java, jars, node, cluster_id, credentials)
        for node in nodes:
            self._spawn(java, jars, node)

    def _render(self, topology: Topology, node: int, credentials: Credentials | None) -> None:
        files = self.files.node(node)
        files.data.mkdir(parents=True, exist_ok=True)
        text = render_properties(topology, node, files.data)
        if credentials is not None:
            text += self.security.broker_properties(
                credentials, HOST, topology.broker_port(node), topology.controller_port(node)
            )
            # The rendered file holds the super user's password.
            files.properties.touch(mode=0o600)
        files.properties.write_text(text, encoding="utf-8")

    def _format(
        self, java: str, jars: BrokerJars, node: int, cluster_id: str, creds: Credentials | None
    ) -> None:
        files = self.files.node(node)
        self._progress(f"formatting the storage of node {node}")
        command = [
            java, "-cp", jars.class_path, "kafka.tools.StorageTool", "format",
            "-t", cluster_id, "-c", str(files.properties),
        ]  # fmt: skip
        if creds is not None:
            command += ClusterSecurity.format_arguments(creds)
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise LocalClusterError(
                f"formatting the storage of node {node} failed (exit {result.returncode}):\n"
                + process.tail_text(output, _LOG_TAIL)
            )
        features = dict(_FEATURE.findall(output))
        shown = ", ".join(f"{k}={features.get(k, '0')}" for k in ("group.version", "share.version"))
        self._progress(f"formatted node {node} ({shown})")

    def _spawn(self, java: str, jars: BrokerJars, node: int) -> None:
        files = self.files.node(node)
        command = [
            java, f"-Xms{self._settings.dev_heap}", f"-Xmx{self._settings.dev_heap}",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_FILES / 'log4j2.yaml'}",
            f"-Dmillstream.node.dir={files.directory}",
            "-cp", jars.class_path, "kafka.Kafka", str(files.properties),
        ]  # fmt: skip
        try:
            pid = process.spawn_detached(command, files.directory, files.console)
        except OSError as exc:
            raise LocalClusterError(f"cannot start node {node} with {java}: {exc}") from exc
        files.write_pid(pid)
        self._progress(f"started node {node} (pid {pid}, log {files.log})")

    def _probe(self, topology: Topology) -> ReadinessProbe:
        return ReadinessProbe(topology, self._admin_settings(topology), self._check_alive)

    def _admin_settings(self, topology: Topology) -> Settings:
        """Settings that connect to this cluster as its super user (plaintext: anyone)."""
        credentials = self.credentials()
        if credentials is None:
            return plaintext(self._settings, topology.bootstrap_servers)
        return credentials.client_settings(
            self._settings, topology.bootstrap_servers, super_user=True
        )

    def _check_alive(self, node: int) -> None:
        files = self.files.node(node)
        if self._live_pid(node) is not None:
            return
        pid = files.read_pid()
        files.clear_pid()
        reason = process.exit_reason(pid) if pid is not None else None
        tails = [
            f"last lines of {path}:\n{tail}"
            for path in (files.log, files.console)
            if (tail := process.tail_file(path, _LOG_TAIL))
        ]
        raise LocalClusterError(
            f"node {node} exited during startup{f' ({reason})' if reason else ''}; "
            + ("\n".join(tails) if tails else f"it logged nothing (see {files.console})")
        )

    # -- stopping and inspecting ---------------------------------------------------

    def _stop_nodes(self, nodes: list[int], kill: bool) -> list[int]:
        pids = {node: self.files.node(node).read_pid() for node in nodes}
        for node, pid in pids.items():
            self._progress(f"stopping node {node} (pid {pid})")
        forced = process.stop([p for p in pids.values() if p is not None], STOP_TIMEOUT, kill=kill)
        if forced and not kill:
            self._progress(f"killed pid(s) {forced}: no clean shutdown in {STOP_TIMEOUT:g}s")
        for node in nodes:
            self.files.node(node).clear_pid()
        return nodes

    def _running_nodes(self, count: int) -> list[int]:
        """Ids among 1..count whose pid file names a live process of that node."""
        return [node for node in range(1, count + 1) if self._live_pid(node) is not None]

    def _live_pid(self, node: int) -> int | None:
        """The pid of ``node`` when its pid file names a live process of that node."""
        files = self.files.node(node)
        pid = files.read_pid()
        if pid is not None and process.is_running(pid, str(files.properties)):
            return pid
        return None

    def _node_status(self, topology: Topology, node: int) -> NodeStatus:
        pid = self._live_pid(node)
        return NodeStatus(
            node,
            pid,
            topology.broker_port(node),
            topology.controller_port(node),
            pid is not None,
            self.files.node(node).log,
        )

    def _recorded_topology(self) -> Topology:
        if self.files.read_state() is None:
            raise LocalClusterError(
                f"no local cluster in {self.files.root}; run `millstream dev up` first"
            )
        return self.topology

    def _any_formatted(self, count: int) -> bool:
        return any(self.files.node(n).is_formatted() for n in range(1, count + 1))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.files.root.mkdir(parents=True, exist_ok=True)
        with self.files.lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text
