"""App declarations that need no broker: tables and their backends."""

from __future__ import annotations

import pytest

from millstream import App
from millstream.errors import ConfigurationError


@pytest.fixture
def app() -> App:
    return App("app-test", bootstrap_servers="127.0.0.1:1")


def test_a_table_is_kept_in_memory_by_default(app: App) -> None:
    assert app.table("counts").backend == "memory"


def test_a_table_names_its_backend(app: App) -> None:
    table = app.table("balances", backend="rocksdb")
    assert table.backend == "rocksdb"

    @app.processor(app.topic("payments", partitions=2), tables=[table])
    def track(record: object, ctx: object) -> None:
        pass

    (step,) = app.topology.stateful
    assert [(s.name, s.kind) for s in step.store_specs()] == [("balances", "rocksdb")]


def test_an_unknown_backend_is_a_configuration_error(app: App) -> None:
    with pytest.raises(ConfigurationError) as raised:
        app.table("counts", backend="disk")  # type: ignore[arg-type]
    assert raised.value.setting == "backend"


def test_the_old_store_keyword_is_gone(app: App) -> None:
    with pytest.raises(TypeError):
        app.table("counts", store="rocksdb")  # type: ignore[call-arg]
