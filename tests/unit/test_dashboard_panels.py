"""The custom panel contract: loading ``dashboard_panels`` and checking snapshots."""

from __future__ import annotations

import types
from typing import Any

import pytest

from millstream.config import load_settings
from millstream.dashboard import Panel, checked_snapshot, load_panels
from millstream.dashboard.service import DashboardService
from millstream.errors import ConfigurationError


class Plain:
    """A panel that imports nothing from millstream."""

    title = "plain"

    def __init__(self, snapshot: Any = None) -> None:
        self.result = snapshot or {"kind": "stats", "items": {"n": 1}}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def snapshot(self) -> Any:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def module(**attrs: Any) -> types.ModuleType:
    m = types.ModuleType("app_module")
    m.__dict__.update(attrs)
    return m


def test_panels_come_from_the_module_and_need_no_base_class() -> None:
    settings = load_settings()
    seen: list[Any] = []

    def factory(s: Any) -> list[Any]:
        seen.append(s)
        return [Plain()]

    (panel,) = load_panels(module(dashboard_panels=factory), settings)
    assert isinstance(panel, Plain) and isinstance(panel, Panel)
    assert seen == [settings]
    assert load_panels(module(), settings) == []


@pytest.mark.parametrize(
    "factory",
    [
        "not callable",
        lambda s: Plain(),  # not a list
        lambda s: [object()],  # not a panel
        lambda s: 1 / 0,  # raises
    ],
)
def test_a_bad_dashboard_panels_fails_naming_it(factory: Any) -> None:
    with pytest.raises(ConfigurationError, match="dashboard_panels"):
        load_panels(module(dashboard_panels=factory), load_settings())


@pytest.mark.parametrize(
    "snapshot",
    [
        {"kind": "stats", "items": {"alerts": 3, "state": "ok"}},
        {"kind": "table", "columns": ["a", "b"], "rows": [[1, "x"], [None, 2.5]]},
        {"kind": "bars", "items": {"velocity": 3, "travel": 0.5}},
        {"kind": "series", "points": [[1.0, 2], [2.0, 3]]},
    ],
)
def test_the_four_kinds_pass(snapshot: dict[str, Any]) -> None:
    assert checked_snapshot(snapshot) == snapshot


@pytest.mark.parametrize(
    ("snapshot", "message"),
    [
        ([], "a snapshot is a dict"),
        ({"kind": "pie"}, "kind must be one of"),
        ({"kind": "bars", "items": {"a": "x"}}, "not a finite number"),
        ({"kind": "bars", "items": {"a": float("nan")}}, "not a finite number"),
        ({"kind": "table", "columns": ["a"], "rows": [[1, 2]]}, "row is a list of 1"),
        ({"kind": "series", "points": [[1.0]]}, r"\[epoch_s, number\]"),
        ({"kind": "stats"}, "needs 'items'"),
    ],
)
def test_malformed_snapshots_are_refused_saying_why(snapshot: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        checked_snapshot(snapshot)


def test_a_failing_panel_shows_its_error_and_the_others_go_on() -> None:
    panels: list[Panel] = [Plain(RuntimeError("db down")), Plain({"kind": "pie"}), Plain()]
    service = DashboardService(None, None, None, panels, None)  # type: ignore[arg-type]
    service.start()
    out = service.panel_snapshots()
    assert out[0] == {"title": "plain", "error": "RuntimeError: db down"}
    assert "kind must be one of" in out[1]["error"]
    assert out[2] == {"title": "plain", "snapshot": {"kind": "stats", "items": {"n": 1}}}
    service.stop()
