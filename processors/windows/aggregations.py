"""Aggregations over the records of a window: how to start, add a record, merge and finish.

Every aggregate is JSON-serializable, because it is written to the changelog.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _identity(x: Any) -> Any:
    return x


@dataclass(frozen=True)
class Aggregation:
    """``extract`` takes what the aggregate needs from a value; ``add`` folds it in."""

    name: str
    initial: Callable[[], Any]
    extract: Callable[[Any], Any]
    add: Callable[[Any, Any], Any]
    merge: Callable[[Any, Any], Any] | None
    result: Callable[[Any], Any] = _identity

    def fold(self, items: list[Any]) -> Any:
        acc = self.initial()
        for item in items:
            acc = self.add(acc, item)
        return acc


def count() -> Aggregation:
    return Aggregation(
        "count", lambda: 0, lambda _v: None, lambda acc, _x: acc + 1, lambda a, b: a + b
    )


def total(fn: Callable[[Any], Any]) -> Aggregation:
    return Aggregation("sum", lambda: 0, fn, lambda acc, x: acc + x, lambda a, b: a + b)


def _pick(better: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def combine(acc: Any, x: Any) -> Any:
        if acc is None:
            return x
        if x is None:
            return acc
        return better(acc, x)

    return combine


def minimum(fn: Callable[[Any], Any]) -> Aggregation:
    pick = _pick(min)
    return Aggregation("min", lambda: None, fn, pick, pick)


def maximum(fn: Callable[[Any], Any]) -> Aggregation:
    pick = _pick(max)
    return Aggregation("max", lambda: None, fn, pick, pick)


def mean(fn: Callable[[Any], Any]) -> Aggregation:
    return Aggregation(
        "mean",
        lambda: [0, 0],
        fn,
        lambda acc, x: [acc[0] + x, acc[1] + 1],
        lambda a, b: [a[0] + b[0], a[1] + b[1]],
        lambda acc: acc[0] / acc[1] if acc[1] else None,
    )


def reduce(fn: Callable[[Any, Any], Any]) -> Aggregation:
    combine = _pick(fn)
    return Aggregation("reduce", lambda: None, _identity, combine, combine)


def aggregate(
    initial: Any,
    add: Callable[[Any, Any], Any],
    merge: Callable[[Any, Any], Any] | None = None,
) -> Aggregation:
    start: Callable[[], Any] = initial if callable(initial) else lambda: copy.deepcopy(initial)
    return Aggregation("aggregate", start, _identity, add, merge)
