"""Shared fixtures: the real Kafka cluster every integration test talks to."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from support import Names, delete_topics

from millstream.config import Settings, load_settings
from millstream.kafka import TopicAdmin, TopicSpec


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


@pytest.fixture
def input_partitions() -> int:
    """Partitions of the input topic that ``names`` creates. A module whose app declares
    another count overrides this fixture."""
    return 1


@pytest.fixture
def names(
    unique_name: Callable[[str], str],
    settings: Settings,
    admin: TopicAdmin,
    input_partitions: int,
) -> Iterator[Names]:
    """Names of a test's app, input and output; the input topic exists, with
    ``input_partitions`` partitions. Afterwards every topic whose name starts with one of
    the three is deleted: the app's own topics (changelogs, repartitions, dead letters,
    late records), outputs named after ``out``, and those of apps named after ``app``."""
    names = Names(unique_name("app"), unique_name("in"), unique_name("out"))
    admin.create([TopicSpec(names.source, input_partitions)])
    yield names
    prefixes = (names.app, names.source, names.out)
    delete_topics(settings, [t for t in admin.list() if t.startswith(prefixes)])
