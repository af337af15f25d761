"""End offsets are asked again through a new admin client when the old one's metadata
is stale.

After a broker restart, a long-lived admin client kept answering FENCED_LEADER_EPOCH
for changelog partitions whose leader epoch had gone up, so a worker recorded no
changelog positions for the rest of its life. Stand-in clients answer the way
librdkafka's does.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from millstream.config import load_settings
from millstream.errors import KafkaError as MillstreamKafkaError
from millstream.kafka import admin as admin_module
from millstream.kafka.admin import TopicAdmin


@dataclass
class Listed:
    offset: int


class StandIn:
    """An admin client whose list_offsets fails with ``error`` or answers ``offset``."""

    def __init__(self, error: int | None, offset: int = 120) -> None:
        self.error, self.offset = error, offset
        self.asked = 0

    def list_offsets(
        self, request: dict[TopicPartition, Any], request_timeout: float
    ) -> dict[TopicPartition, concurrent.futures.Future[Listed]]:
        self.asked += 1
        futures: dict[TopicPartition, concurrent.futures.Future[Listed]] = {}
        for tp in request:
            future: concurrent.futures.Future[Listed] = concurrent.futures.Future()
            if self.error is None:
                future.set_result(Listed(self.offset))
            else:
                future.set_exception(KafkaException(KafkaError(self.error)))
            futures[tp] = future
        return futures


def admin_made_of(monkeypatch: pytest.MonkeyPatch, *clients: StandIn) -> TopicAdmin:
    made = iter(clients)
    monkeypatch.setattr(admin_module, "make_admin", lambda _settings: next(made))
    return TopicAdmin(load_settings(bootstrap_servers="127.0.0.1:9"))


def test_a_stale_leader_epoch_is_asked_again_through_a_new_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stale, fresh = StandIn(KafkaError.FENCED_LEADER_EPOCH), StandIn(None, 120)
    admin = admin_made_of(monkeypatch, stale, fresh)

    assert admin.end_offsets([("app-counts-changelog", 3)]) == {("app-counts-changelog", 3): 120}
    # The new client stays: the next call does not go through the stale one again.
    assert admin.end_offsets([("app-counts-changelog", 3)]) == {("app-counts-changelog", 3): 120}
    assert (stale.asked, fresh.asked) == (1, 2)


def test_other_errors_are_raised_without_a_new_client(monkeypatch: pytest.MonkeyPatch) -> None:
    denied, unused = StandIn(KafkaError.TOPIC_AUTHORIZATION_FAILED), StandIn(None)
    admin = admin_made_of(monkeypatch, denied, unused)

    with pytest.raises(MillstreamKafkaError):
        admin.end_offsets([("app-counts-changelog", 3)])
    assert unused.asked == 0


def test_a_client_passed_in_is_never_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_module, "make_admin", pytest.fail)
    stale = StandIn(KafkaError.FENCED_LEADER_EPOCH)
    admin = TopicAdmin(load_settings(bootstrap_servers="127.0.0.1:9"), client=stale)  # type: ignore[arg-type]

    with pytest.raises(MillstreamKafkaError) as raised:
        admin.end_offsets([("app-counts-changelog", 3)])
    assert raised.value.code == "FENCED_LEADER_EPOCH"
