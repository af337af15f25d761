"""The local cluster's rendered server.properties: ports, voters and replication per node count."""

from __future__ import annotations

from pathlib import Path

import pytest

from millstream.config import LOCAL_BOOTSTRAP, Settings
from millstream.dev.properties import Topology, parse_properties, render_properties
from millstream.errors import LocalClusterError


def rendered(nodes: int, node: int, base_port: int = 19092) -> dict[str, str]:
    text = render_properties(Topology(nodes, base_port), node, Path(f"/data/node-{node}"))
    assert "$" not in text, "unsubstituted template variable"
    return parse_properties(text)


def test_default_node_1_is_the_local_bootstrap() -> None:
    topology = Topology(1, Settings.model_fields["dev_port"].default)

    assert topology.bootstrap_servers == LOCAL_BOOTSTRAP == "127.0.0.1:19092"


def test_one_node_listens_on_base_port_and_the_next() -> None:
    props = rendered(1, 1)

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == "/data/node-1"


def test_one_node_replicates_internal_topics_once() -> None:
    props = rendered(1, 1)

    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "default.replication.factor",
        "min.insync.replicas",
    ):
        assert props[key] == "1", key


@pytest.mark.parametrize(
    ("node", "broker", "controller"), [(1, 29092, 29093), (2, 29094, 29095), (3, 29096, 29097)]
)
def test_three_nodes_take_two_ports_each(node: int, broker: int, controller: int) -> None:
    props = rendered(3, node, base_port=29092)

    assert props["node.id"] == str(node)
    assert props["listeners"] == (
        f"PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}"
    )
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{broker}"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"
    )


def test_three_nodes_replicate_three_times_with_min_isr_two() -> None:
    props = rendered(3, 2)

    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
        "default.replication.factor",
    ):
        assert props[key] == "3", key
    for key in (
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.min.isr",
        "min.insync.replicas",
    ):
        assert props[key] == "2", key


def test_three_node_bootstrap_lists_every_broker() -> None:
    assert Topology(3, 29092).bootstrap_servers == (
        "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    )


@pytest.mark.parametrize("nodes", [1, 3])
def test_development_settings_are_the_same_for_every_node_count(nodes: int) -> None:
    props = rendered(nodes, 1)

    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["offsets.topic.num.partitions"] == "4"
    assert props["transaction.state.log.num.partitions"] == "4"
    assert props["log.cleaner.dedupe.buffer.size"] == str(8 * 1024 * 1024)
    assert props["group.consumer.session.timeout.ms"] == "6000"
    assert props["group.consumer.min.session.timeout.ms"] == "500"
    assert props["group.consumer.heartbeat.interval.ms"] == "1000"
    assert props["group.consumer.min.heartbeat.interval.ms"] == "100"
    assert props["group.share.session.timeout.ms"] == "6000"
    assert props["group.share.min.session.timeout.ms"] == "3000"
    assert props["group.share.heartbeat.interval.ms"] == "1000"
    assert props["group.share.min.heartbeat.interval.ms"] == "500"


def test_a_node_outside_the_cluster_is_refused() -> None:
    with pytest.raises(LocalClusterError, match="node 4 does not exist"):
        render_properties(Topology(3, 19092), 4, Path("/data"))
