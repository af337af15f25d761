"""The local cluster's topology (ports, voters) and its rendered ``server.properties``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

from millstream.config import KAFKA_FILES
from millstream.errors import LocalClusterError

#: Every node listens on the loopback interface only.
HOST = "127.0.0.1"
TEMPLATE = KAFKA_FILES / "server.properties.template"


@dataclass(frozen=True)
class Topology:
    """Node count and ports of a local cluster.

    Node ``i`` (1-based) serves clients on ``base_port + 2*(i-1)`` and the KRaft
    controller quorum on the port after it, so the default node 1 is ``127.0.0.1:19092``.
    """

    nodes: int
    base_port: int

    def broker_port(self, node: int) -> int:
        """Client (PLAINTEXT) port of ``node``."""
        return self.base_port + 2 * (self._check(node) - 1)

    def controller_port(self, node: int) -> int:
        """KRaft controller port of ``node``."""
        return self.broker_port(node) + 1

    @property
    def node_ids(self) -> range:
        return range(1, self.nodes + 1)

    @property
    def bootstrap_servers(self) -> str:
        """Comma-separated ``host:port`` of every node's broker listener."""
        return ",".join(f"{HOST}:{self.broker_port(n)}" for n in self.node_ids)

    @property
    def voters(self) -> str:
        """``controller.quorum.voters``: ``id@host:port`` of every node."""
        return ",".join(f"{n}@{HOST}:{self.controller_port(n)}" for n in self.node_ids)

    @property
    def replication(self) -> int:
        """Replication factor of internal and default topics: min(3, nodes)."""
        return min(3, self.nodes)

    @property
    def min_isr(self) -> int:
        """min.insync.replicas: 2 when there are 3 replicas, else 1."""
        return 2 if self.replication >= 3 else 1

    def _check(self, node: int) -> int:
        if node not in self.node_ids:
            raise LocalClusterError(
                f"node {node} does not exist: the local cluster has nodes 1..{self.nodes}"
            )
        return node


def render_properties(topology: Topology, node: int, log_dir: Path) -> str:
    """The ``server.properties`` text of ``node``, with its data in ``log_dir``.

    Raises:
        LocalClusterError: ``node`` is not in the topology, or the template is broken.
    """
    values = {
        "node_id": node,
        "nodes": topology.nodes,
        "voters": topology.voters,
        "broker_port": topology.broker_port(node),
        "controller_port": topology.controller_port(node),
        "log_dirs": log_dir,
        "replication": topology.replication,
        "min_isr": topology.min_isr,
    }
    try:
        return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(values)
    except (KeyError, ValueError, OSError) as exc:
        raise LocalClusterError(f"cannot render {TEMPLATE}: {exc!r}") from exc


def parse_properties(text: str) -> dict[str, str]:
    """``key=value`` lines of a Java properties text; comments and blank lines skipped."""
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            key, _, value = line.partition("=")
            result[key.strip()] = value.strip()
    return result
