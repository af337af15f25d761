"""Admin requests that went to a broker which has just died are asked again.

librdkafka retries a request on the broker it first went to, and sends a topic's
DescribeConfigs to the broker the last metadata response named controller; under
KRaft that can be a broker killed a moment ago, which never answers. The admin gives
each attempt a share of ``client_timeout`` and asks anew (DescribeConfigs after a
fresh metadata request), within ``client_timeout`` in all. A stand-in client fails
the way librdkafka does.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from millstream.config import load_settings
from millstream.errors import BrokerUnreachableError
from millstream.kafka import TopicAdmin


@dataclass
class Entry:
    value: str
    is_default: bool


class StandIn:
    """Times out the first ``dead_metadata`` metadata and ``dead_describes`` DescribeConfigs
    requests (librdkafka's _TIMED_OUT), then answers; records every call and its timeout."""

    def __init__(self, dead_metadata: int = 0, dead_describes: int = 0) -> None:
        self.dead_metadata = dead_metadata
        self.dead_describes = dead_describes
        self.calls: list[tuple[str, float]] = []

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        self.calls.append(("metadata", timeout))
        if self.dead_metadata > 0:
            self.dead_metadata -= 1
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        replicas = SimpleNamespace(replicas=[1, 2, 3], leader=1)
        topics = {"t": SimpleNamespace(error=None, partitions={0: replicas, 1: replicas})}
        return SimpleNamespace(topics=topics, brokers={1: None, 2: None, 3: None})

    def poll(self, timeout: float) -> int:
        """No error events: the cluster never refused this client."""
        return 0

    def describe_configs(self, resources: list[Any], request_timeout: float) -> Any:
        self.calls.append(("describe", request_timeout))
        future: Future[Any] = Future()
        if self.dead_describes > 0:
            self.dead_describes -= 1
            future.set_exception(KafkaException(KafkaError(KafkaError._TIMED_OUT)))
        else:
            future.set_result({"retention.ms": Entry("1000", False), "x": Entry("1", True)})
        return {resources[0]: future}


def admin(client: StandIn, timeout: float = 10.0) -> TopicAdmin:
    settings = load_settings(bootstrap_servers="127.0.0.1:1", client_timeout=timeout)
    return TopicAdmin(settings, client)  # type: ignore[arg-type]


def test_a_describe_the_dead_controller_drops_is_asked_again_after_fresh_metadata() -> None:
    client = StandIn(dead_describes=2)

    info = admin(client).describe("t")

    assert (info.partitions, info.replication, info.config) == (2, 3, {"retention.ms": "1000"})
    kinds = [kind for kind, _ in client.calls]
    assert kinds == ["metadata", "describe", "metadata", "describe", "metadata", "describe"]
    assert all(seconds <= 2.0 for _, seconds in client.calls), client.calls


def test_a_metadata_request_a_dead_broker_drops_is_asked_again() -> None:
    client = StandIn(dead_metadata=3)

    assert admin(client).broker_count() == 3

    assert [kind for kind, _ in client.calls] == ["metadata"] * 4
    assert all(seconds <= 2.0 for _, seconds in client.calls), client.calls


def test_a_controller_that_never_answers_fails_within_client_timeout() -> None:
    began = time.monotonic()

    with pytest.raises(
        BrokerUnreachableError, match=r"describing topic 't': no answer within 0\.5s"
    ):
        admin(StandIn(dead_describes=10**6), 0.5).describe("t")

    assert time.monotonic() - began < 1.0


def test_a_cluster_that_never_answers_fails_within_client_timeout() -> None:
    began = time.monotonic()

    with pytest.raises(BrokerUnreachableError, match=r"no Kafka broker answered at 127\.0\.0\.1:1"):
        admin(StandIn(dead_metadata=10**6), 0.5).list()

    assert time.monotonic() - began < 1.0
