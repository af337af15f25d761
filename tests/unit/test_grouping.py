"""Windowed aggregations as the DSL builds them: emission and backend. No broker needed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from millstream import App, sinks, windows
from millstream.errors import ConfigurationError
from millstream.processors import GroupedStream
from millstream.processors.windows.base import WindowStep

MINUTE = windows.Tumbling(timedelta(minutes=1))


@pytest.fixture
def app() -> App:
    return App("grouping-test", bootstrap_servers="127.0.0.1:1")


@pytest.fixture
def grouped(app: App) -> GroupedStream:
    return app.stream(app.topic("clicks", partitions=2)).group_by_key()


def window_step(app: App, name: str) -> WindowStep:
    (step,) = [s for s in app.topology.stateful if getattr(s, "store_name", None) == name]
    assert isinstance(step, WindowStep)
    return step


def test_emission_is_final_by_default(app: App, grouped: GroupedStream) -> None:
    grouped.window(MINUTE, name="w").count().to(app.topic("out"))
    assert window_step(app, "w").emit_mode == "final"


def test_emission_is_chosen_before_wiring(app: App, grouped: GroupedStream) -> None:
    results = grouped.window(MINUTE, name="w").count()
    assert results.current() is results
    results.to(app.topic("out"))
    assert window_step(app, "w").emit_mode == "current"


def test_the_last_choice_before_wiring_holds(app: App, grouped: GroupedStream) -> None:
    grouped.window(MINUTE, name="w").count().current().final().sink(sinks.StdoutSink())
    assert window_step(app, "w").emit_mode == "final"


@pytest.mark.parametrize("wire", ["to", "sink", "map"])
def test_changing_the_emission_of_wired_results_raises(
    app: App, grouped: GroupedStream, wire: str
) -> None:
    results = grouped.window(MINUTE, name="w").count()
    if wire == "to":
        results.to(app.topic("out"))
    elif wire == "sink":
        results.sink(sinks.StdoutSink())
    else:
        results.map(lambda v: v)
    with pytest.raises(ConfigurationError) as raised:
        results.current()
    assert raised.value.setting == "current()"
    assert "'w'" in str(raised.value) and wire in str(raised.value)
    assert window_step(app, "w").emit_mode == "final"


def test_repeating_the_emission_of_wired_results_changes_nothing(
    app: App, grouped: GroupedStream
) -> None:
    results = grouped.window(MINUTE, name="w").count().current()
    results.to(app.topic("out"))
    assert results.current() is results
    results.current().to(app.topic("out-2"))
    assert window_step(app, "w").emit_mode == "current"
    assert len(window_step(app, "w").children) == 2


def test_two_emissions_are_two_aggregations(app: App, grouped: GroupedStream) -> None:
    grouped.window(MINUTE, name="final").count().final().to(app.topic("final"))
    grouped.window(MINUTE, name="current").count().current().to(app.topic("current"))
    assert window_step(app, "final").emit_mode == "final"
    assert window_step(app, "current").emit_mode == "current"


@pytest.mark.parametrize("backend", ["memory", "rocksdb"])
def test_the_backend_names_the_store_kind(app: App, grouped: GroupedStream, backend: str) -> None:
    grouped.window(MINUTE, name="w", backend=backend).count()  # type: ignore[arg-type]
    (spec,) = window_step(app, "w").store_specs()
    assert spec.kind == backend


def test_an_unknown_backend_is_a_configuration_error(grouped: GroupedStream) -> None:
    with pytest.raises(ConfigurationError) as raised:
        grouped.window(MINUTE, backend="disk")  # type: ignore[arg-type]
    assert raised.value.setting == "backend"
    assert "'disk'" in str(raised.value)
