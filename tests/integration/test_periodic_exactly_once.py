"""Periodic tasks with exactly-once: the schedule's state and its firings commit in
one transaction, and a task topic written by transactions (its offsets include
commit markers) still commits past every task. One kill -9 of the worker running the
schedule in a 30 s window of ``every=2s``: 15 firings, none twice
(tests/periodic_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from periodic_support import fire_through_kills
from support import Names

from millstream.config import Settings

pytestmark = pytest.mark.timeout(180)


def test_every_2s_fires_once_per_period_through_a_kill_with_exactly_once(
    names: Names, bootstrap_servers: str, settings: Settings, tmp_path: Path
) -> None:
    fire_through_kills(
        names,
        bootstrap_servers,
        settings,
        tmp_path,
        guarantee="exactly_once",
        window_ms=30_000,
        kills_after=(12_000,),
    )
