"""Shared fixtures: the real Kafka cluster every integration test talks to."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from millstream.config import Settings, load_settings
from millstream.kafka import TopicAdmin


@pytest.fixture(scope="session")
def bootstrap_servers(kafka_bootstrap: str) -> str:
    """Bootstrap servers of the cluster under test: the ``kafka_bootstrap`` fixture of
    millstream's pytest plugin (millstream/testing/pytest_plugin.py).

    MILLSTREAM_BOOTSTRAP_SERVERS when set (``scripts/test`` sets it, starting the
    local cluster first when needed); else a Kafka container when Docker answers;
    else the local cluster of this repository (``<repo>/.local/kafka`` unless
    MILLSTREAM_LOCAL_DIR says otherwise), reused when it runs, or started for the
    session and stopped after it.
    """
    return kafka_bootstrap


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
