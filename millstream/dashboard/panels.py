"""Custom panels: the extension point an app uses to add its own views to the dashboard.

An app module that defines ``dashboard_panels(settings) -> list[panel]`` gets those
panels on its page. A panel needs no import from millstream: any object with the
four members of :class:`Panel` fits. Each snapshot is one of four kinds::

    {"kind": "stats",  "items": {"name": number_or_str, ...}}
    {"kind": "table",  "columns": [...], "rows": [[...], ...]}
    {"kind": "bars",   "items": {"label": number, ...}}
    {"kind": "series", "points": [[epoch_s, number], ...]}
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from millstream.config import Settings
from millstream.errors import ConfigurationError

log = logging.getLogger("millstream.dashboard")

#: The module attribute the dashboard looks for.
PANELS_ATTRIBUTE = "dashboard_panels"

KINDS = ("stats", "table", "bars", "series")


@runtime_checkable
class Panel(Protocol):
    """One custom panel of the dashboard.

    ``start()`` is called once before the first ``snapshot()`` (open consumers or
    connections there), ``stop()`` once when the dashboard shuts down. ``snapshot()``
    is called from one thread, about once per refresh interval, and must return
    quickly with a JSON-able dict of one of the four kinds in the module docstring;
    an exception it raises is shown on the panel, and the dashboard goes on.
    """

    title: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


def load_panels(module: ModuleType, settings: Settings) -> list[Panel]:
    """The panels ``module.dashboard_panels(settings)`` returns; [] when it has none.

    Raises:
        ConfigurationError: the attribute is not callable, raises, or returns something
            that is not a list of panels (setting ``dashboard_panels``).
    """
    factory: Callable[[Settings], Any] | None = getattr(module, PANELS_ATTRIBUTE, None)
    if factory is None:
        return []
    if not callable(factory):
        raise ConfigurationError(
            PANELS_ATTRIBUTE, f"{module.__name__}.{PANELS_ATTRIBUTE} is not callable"
        )
    try:
        panels = factory(settings)
    except Exception as exc:
        raise ConfigurationError(
            PANELS_ATTRIBUTE, f"{module.__name__}.{PANELS_ATTRIBUTE} raised {exc!r}"
        ) from exc
    if not isinstance(panels, list | tuple):
        raise ConfigurationError(
            PANELS_ATTRIBUTE, f"must return a list of panels, got {type(panels).__name__}"
        )
    for panel in panels:
        if not isinstance(panel, Panel) or not isinstance(getattr(panel, "title", None), str):
            raise ConfigurationError(
                PANELS_ATTRIBUTE,
                f"{panel!r} is not a panel: it needs title (str), start(), stop() and snapshot()",
            )
    return list(panels)


def checked_snapshot(snapshot: object) -> dict[str, Any]:
    """``snapshot`` when it is a valid panel snapshot, with every number finite.

    Raises:
        ValueError: it is not one of the four kinds, or malformed; the message says how.
    """
    if not isinstance(snapshot, Mapping):
        raise ValueError(f"a snapshot is a dict, got {type(snapshot).__name__}")
    kind = snapshot.get("kind")
    if kind == "stats":
        items = _mapping(snapshot, "items")
        return {"kind": kind, "items": {str(k): _number_or_text(v) for k, v in items.items()}}
    if kind == "bars":
        items = _mapping(snapshot, "items")
        return {"kind": kind, "items": {str(k): _number(v) for k, v in items.items()}}
    if kind == "table":
        columns = [str(c) for c in _sequence(snapshot, "columns")]
        rows = [[_cell(c) for c in _row(r, len(columns))] for r in _sequence(snapshot, "rows")]
        return {"kind": kind, "columns": columns, "rows": rows}
    if kind == "series":
        points = [_point(p) for p in _sequence(snapshot, "points")]
        return {"kind": kind, "points": points}
    raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")


def _mapping(snapshot: Mapping[str, Any], key: str) -> Mapping[Any, Any]:
    value = snapshot.get(key)
    if not isinstance(value, Mapping):
        raise ValueError(f"{snapshot.get('kind')} needs {key!r} as a dict")
    return value


def _sequence(snapshot: Mapping[str, Any], key: str) -> list[Any]:
    value = snapshot.get(key)
    if not isinstance(value, list | tuple):
        raise ValueError(f"{snapshot.get('kind')} needs {key!r} as a list")
    return list(value)


def _row(row: object, width: int) -> list[Any]:
    if not isinstance(row, list | tuple) or len(row) != width:
        raise ValueError(f"every table row is a list of {width} cells, got {row!r}")
    return list(row)


def _point(point: object) -> list[float]:
    if not isinstance(point, list | tuple) or len(point) != 2:
        raise ValueError(f"a series point is [epoch_s, number], got {point!r}")
    return [_number(point[0]), _number(point[1])]


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return value


def _number_or_text(value: object) -> float | str:
    return value if isinstance(value, str) else _number(value)


def _cell(value: object) -> Any:
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int | float):
        return _number(value)
    return str(value)
