"""The local development Kafka cluster: real Apache Kafka 4.x (KRaft) from Maven Central jars.

``LocalCluster(settings).up(nodes=1)`` assembles the broker once per Kafka version,
formats storage once and starts 1 or 3 combined broker+controller nodes on
127.0.0.1 under ``settings.local_dir / "kafka"``; ``millstream dev`` and
``scripts/kafka`` are its command line.
"""

from millstream.dev.assembly import BrokerJars, check_java, packaged_kafka_version
from millstream.dev.cluster import SUPPORTED_NODES, ClusterStatus, LocalCluster, NodeStatus
from millstream.dev.properties import Topology, render_properties

__all__ = [
    "SUPPORTED_NODES",
    "BrokerJars",
    "ClusterStatus",
    "LocalCluster",
    "NodeStatus",
    "Topology",
    "check_java",
    "packaged_kafka_version",
    "render_properties",
]
