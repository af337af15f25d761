"""Shared fixtures: the real Kafka cluster every integration test talks to."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from millstream.config import Settings, load_settings
from millstream.dev import LocalCluster
from millstream.errors import LocalClusterError
from millstream.kafka import TopicAdmin

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    """Bootstrap servers of the cluster under test.

    MILLSTREAM_BOOTSTRAP_SERVERS when set; otherwise the local cluster of this
    repository (``<repo>/.local/kafka`` unless MILLSTREAM_LOCAL_DIR says otherwise):
    reused when it runs, started when not (1 node when new). It is left running for
    the next session: ``scripts/test`` stops it.
    """
    configured = os.environ.get("MILLSTREAM_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    settings = load_settings()
    if not settings.local_dir.is_absolute():
        settings = settings.model_copy(update={"local_dir": ROOT / settings.local_dir})
    try:
        bootstrap = LocalCluster(settings).up()
    except LocalClusterError as exc:
        failure = f"cannot start the local Kafka cluster: {exc}"
    else:
        failure = ""
    if failure:
        pytest.fail(failure, pytrace=False)
    yield bootstrap


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
