"""Fixtures of the integration tests beyond Kafka: a real PostgreSQL server.

The server starts on first use only (tests that never ask for ``postgres`` never pay
for it) and lives for the session; see ``tests/postgres_support.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from postgres_support import PostgresServer, running_postgres
from support import ROOT


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """This session's PostgreSQL server (under ``.local/postgres-<pid>``), stopped and
    removed at the end of the session, also when it fails."""
    with running_postgres(ROOT / ".local") as server:
        yield server


@pytest.fixture
def postgres(postgres_server: PostgresServer) -> PostgresServer:
    """The session's server, running: a test may ``stop()`` and ``start()`` it (an
    outage); one that fails while it is down leaves it to be started again here."""
    postgres_server.ensure_running()
    return postgres_server
