"""Waiting for a starting cluster until it really serves: metadata and a probe topic."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable

from millstream.config import Settings
from millstream.dev.process import accepts_connections
from millstream.dev.properties import Topology
from millstream.errors import LocalClusterError, MillstreamError
from millstream.kafka import TopicAdmin, TopicSpec

#: Called with a node id while waiting; raises LocalClusterError when that node died.
NodeCheck = Callable[[int], None]

_POLL = 0.25
_REQUEST_TIMEOUT = 5.0


class ReadinessProbe:
    """Blocks until a cluster answers metadata requests with every node registered
    and can create and delete a topic replicated to ``min(3, nodes)`` brokers.
    """

    def __init__(self, topology: Topology, settings: Settings, check_node: NodeCheck) -> None:
        """``settings`` connect to the cluster as a user allowed to create topics (their
        client timeout is replaced by a short one)."""
        self._topology = topology
        self._check_node = check_node
        self._settings = settings.model_copy(update={"client_timeout": _REQUEST_TIMEOUT})

    def wait(self, started: Iterable[int], timeout: float) -> None:
        """Wait up to ``timeout`` seconds, failing early when a node of ``started`` exits.

        Raises:
            LocalClusterError: a started node exited (the message ends with its log's
                tail), or the cluster was not ready in time (with the last error seen).
        """
        deadline = time.monotonic() + timeout
        started = list(started)
        for node in started:
            self._wait_for_listener(node, deadline, timeout)
        admin = TopicAdmin(self._settings)
        last_error = "no answer yet"
        while True:
            for node in started:
                self._check_node(node)
            try:
                self._probe(admin)
                return
            except MillstreamError as exc:
                last_error = str(exc)
            if time.monotonic() >= deadline:
                raise LocalClusterError(
                    f"the local cluster at {self._topology.bootstrap_servers} was not ready "
                    f"within {timeout:g}s (last error: {last_error}); see the nodes' server.log "
                    "(`millstream dev logs --node N`)"
                )
            time.sleep(_POLL)

    def _wait_for_listener(self, node: int, deadline: float, timeout: float) -> None:
        port = self._topology.broker_port(node)
        while not accepts_connections(port):
            self._check_node(node)
            if time.monotonic() >= deadline:
                raise LocalClusterError(
                    f"node {node} did not open its broker port {port} within {timeout:g}s; "
                    f"see `millstream dev logs --node {node}`"
                )
            time.sleep(_POLL)

    def _probe(self, admin: TopicAdmin) -> None:
        brokers = admin.broker_count()
        if brokers < self._topology.nodes:
            raise LocalClusterError(f"{brokers} of {self._topology.nodes} brokers registered")
        name = f"millstream-dev-probe-{uuid.uuid4().hex[:12]}"
        admin.create([TopicSpec(name, partitions=1, replication=self._topology.replication)])
        admin.delete([name])


def plaintext(settings: Settings, bootstrap_servers: str) -> Settings:
    """``settings`` connected to a plaintext local cluster, whatever the security
    settings of the environment say."""
    return settings.model_copy(
        update={
            "bootstrap_servers": bootstrap_servers,
            "security_protocol": "PLAINTEXT",
            "sasl_mechanism": None,
            "sasl_username": None,
            "sasl_password": None,
            "sasl_password_file": None,
            "sasl_oauthbearer_config": {},
            "ssl_ca_location": None,
            "ssl_certificate_location": None,
            "ssl_key_location": None,
            "ssl_key_password": None,
        }
    )
