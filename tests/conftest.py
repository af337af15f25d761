"""Shared fixtures: the real Kafka cluster every integration test talks to."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from millstream.config import Settings, load_settings
from millstream.kafka import TopicAdmin


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    """Bootstrap servers of the cluster under test: MILLSTREAM_BOOTSTRAP_SERVERS, or the local one."""
    yield os.environ.get("MILLSTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:19092")


@pytest.fixture(scope="session")
def settings(bootstrap_servers: str) -> Settings:
    return load_settings(bootstrap_servers=bootstrap_servers)


@pytest.fixture(scope="session")
def admin(settings: Settings) -> TopicAdmin:
    return TopicAdmin(settings)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Names unique to this test run, so tests never see each other's topics or groups."""
    stem = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:60]

    def make(kind: str) -> str:
        return f"t-{stem}-{kind}-{uuid.uuid4().hex[:8]}"

    return make
