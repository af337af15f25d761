"""Where the local cluster keeps its files, and the record of what it was started as.

::

    <local_dir>/kafka/
    ├── cluster.json          node count, ports, cluster id, Kafka version, security
    ├── security/             CA, broker certificate, users (``--security sasl_ssl`` only)
    ├── libs/<version>/       the broker's jars, one directory per Kafka version
    └── node-<i>/
        ├── server.properties rendered from the packaged template at every start
        ├── data/             the node's log dir (formatted once)
        ├── server.log        the broker's log (log4j2)
        ├── console.log       the JVM's stdout and stderr (crashes before logging starts)
        └── kafka.pid         pid of the running node, removed when it is stopped
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from millstream.errors import LocalClusterError


@dataclass(frozen=True)
class ClusterState:
    """What ``cluster.json`` records about the cluster last brought up."""

    nodes: int
    base_port: int
    cluster_id: str
    kafka_version: str
    #: ``plaintext``, or ``sasl_ssl`` (millstream.dev.security); fixed when formatted.
    security: str = "plaintext"


@dataclass(frozen=True)
class NodeFiles:
    """The files of one node."""

    directory: Path

    @property
    def properties(self) -> Path:
        return self.directory / "server.properties"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @property
    def console(self) -> Path:
        return self.directory / "console.log"

    @property
    def pid_file(self) -> Path:
        return self.directory / "kafka.pid"

    def is_formatted(self) -> bool:
        """Whether the data directory holds a formatted KRaft log dir."""
        return (self.data / "meta.properties").is_file()

    def read_pid(self) -> int | None:
        """The recorded pid, or None when there is none (or it is unreadable)."""
        try:
            return int(self.pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None

    def write_pid(self, pid: int) -> None:
        self.pid_file.write_text(f"{pid}\n", encoding="utf-8")

    def clear_pid(self) -> None:
        self.pid_file.unlink(missing_ok=True)


class ClusterFiles:
    """The directory tree of one local cluster, rooted at ``<local_dir>/kafka``."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()

    @property
    def libs(self) -> Path:
        return self.root / "libs"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def state_file(self) -> Path:
        return self.root / "cluster.json"

    def node(self, node: int) -> NodeFiles:
        return NodeFiles(self.root / f"node-{node}")

    def node_dirs(self) -> list[Path]:
        """Every ``node-<i>`` directory on disk."""
        return sorted(self.root.glob("node-*")) if self.root.is_dir() else []

    def read_state(self) -> ClusterState | None:
        """The recorded state, or None when no cluster was brought up here.

        Raises:
            LocalClusterError: ``cluster.json`` exists but cannot be read.
        """
        try:
            raw = json.loads(self.state_file.read_text(encoding="utf-8"))
            return ClusterState(**raw) if raw else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise LocalClusterError(
                f"{self.state_file} is unreadable ({exc}); remove {self.root} or run "
                "`millstream dev down --wipe`"
            ) from exc

    def write_state(self, state: ClusterState) -> None:
        """Record ``state`` atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.state_file.with_suffix(".json.tmp")
        staging.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
        os.replace(staging, self.state_file)
