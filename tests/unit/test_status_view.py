"""The rendering and argument handling of ``millstream status`` and ``reset``, without a
broker."""

from __future__ import annotations

import pytest
import typer
from rich.console import Console

from millstream.cli.status import (
    cell,
    partition_list,
    render_status,
    reported,
    watch_arguments,
)
from millstream.groups import GroupStatus, MemberStatus, PartitionLag
from millstream.groups.restores import RestoreProgress
from millstream.groups.status import DeadLetterSize


def rendered(status: GroupStatus) -> str:
    console = Console(record=True, width=200)
    console.print(render_status(status))
    return console.export_text()


def make_status(*, members: bool = True, dlq: int | None = 0) -> GroupStatus:
    member = MemberStatus("m-1", "shop-42", "/127.0.0.1", None, [("orders", 0)], [])
    return GroupStatus(
        group="shop",
        state="Stable" if members else "Empty",
        protocol="consumer",
        assignor="uniform",
        members=[member] if members else [],
        topics={"orders": "source"},
        partitions=[
            PartitionLag("orders", 0, 10, 15, 5),
            PartitionLag("orders", 1, None, 7, None),
        ],
        dlq=DeadLetterSize("shop-dlq", dlq),
        restores=[RestoreProgress("shop-counts-changelog", 1, 0, 50, 200, "box", 7, 0)],
    )


def test_status_table_shows_the_figures_and_dashes_where_none() -> None:
    text = rendered(make_status())
    assert "state Stable  protocol consumer" in text and "total lag 5" in text
    rows = [line for line in text.splitlines() if "│ source" in line]
    assert [[c.strip() for c in line.split("│")[3:7]] for line in rows] == [
        ["0", "10", "15", "5"],
        ["1", "-", "7", "-"],
    ]
    assert "shop-42" in rows[0] and "shop-42" not in rows[1]
    assert "dead letters: shop-dlq: 0 records" in text
    assert "25%" in text and "box pid 7" in text


def test_status_without_members_or_dead_letter_topic() -> None:
    text = rendered(make_status(members=False, dlq=None))
    assert "no live members" in text
    assert "dead letters: shop-dlq: topic does not exist" in text


def test_cells_and_partition_lists() -> None:
    assert cell(None) == "-" and cell(0) == "0" and cell(12) == "12"
    assert partition_list([]) == "-"
    assert partition_list([("b", 2), ("a", 1), ("b", 0)]) == "a: 1\nb: 0,2"


@pytest.mark.parametrize(
    ("app", "extra", "watch", "expected"),
    [
        ("shop", [], False, ("shop", None)),
        ("shop", [], True, ("shop", 2.0)),
        ("shop", ["5"], True, ("shop", 5.0)),
        ("shop", ["0.5"], True, ("shop", 0.5)),
        ("5", ["shop"], True, ("shop", 5.0)),  # --watch 5 shop
    ],
)
def test_watch_arguments(
    app: str, extra: list[str], watch: bool, expected: tuple[str, float | None]
) -> None:
    assert watch_arguments(app, extra, watch) == expected


@pytest.mark.parametrize(
    ("extra", "watch"), [(["5"], False), (["x"], True), (["1", "2"], True), (["0.01"], True)]
)
def test_watch_arguments_refuse(extra: list[str], watch: bool) -> None:
    with pytest.raises(typer.BadParameter):
        watch_arguments("shop", extra, watch)


def test_report_times() -> None:
    assert reported(1_000_000, 1_042_400) == "42s ago"
    assert reported(0, 10_000_000) == "1970-01-01 00:00:00 UTC"
