"""millstream.groups without a broker: reset targets, lag arithmetic, topic kinds, the
JSON shape of a status, and the restore reports' parsing."""

from __future__ import annotations

import datetime

import orjson
import pytest

from millstream import App
from millstream.groups import GroupStatus, MemberStatus, PartitionLag, lag, parse_target
from millstream.groups.restores import RestoreProgress, parse_reports, restore_group
from millstream.groups.status import DeadLetterSize, consumed_topics, guess_kind

#: 2026-12-01T06:30:00Z in epoch milliseconds.
MOMENT = 1_796_106_600_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("earliest", "earliest"),
        ("LATEST", "latest"),
        (" latest ", "latest"),
        ("0", 0),
        (str(MOMENT), MOMENT),
        ("2026-12-01T06:30:00Z", MOMENT),
        ("2026-12-01T06:30:00+00:00", MOMENT),
        ("2026-12-01T08:30:00+02:00", MOMENT),
        ("2026-12-01T06:30:00", MOMENT),  # no offset: UTC
        ("2026-12-01 06:30:00.250Z", MOMENT + 250),
        ("2026-12-01", MOMENT - (6 * 3600 + 1800) * 1000),
    ],
)
def test_parse_target(text: str, expected: object) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "-5", "12:00", "2026-13-01", "1969-12-31"])
def test_parse_target_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"not earliest, latest|before 1970"):
        parse_target(text)


def test_the_moment_constant_is_right() -> None:
    moment = datetime.datetime(2026, 12, 1, 6, 30, tzinfo=datetime.UTC)
    assert int(moment.timestamp() * 1000) == MOMENT


@pytest.mark.parametrize(
    ("committed", "end", "expected"),
    [(10, 15, 5), (15, 15, 0), (0, 0, 0), (None, 15, None), (10, None, None), (-1001, 5, None)],
)
def test_lag_is_end_minus_committed(
    committed: int | None, end: int | None, expected: object
) -> None:
    assert lag(committed, end) == expected


def test_consumed_topics_names_each_kind() -> None:
    app = App("shop", bootstrap_servers="127.0.0.1:1")
    orders = app.topic("orders", partitions=3)
    app.stream(orders).map(lambda v: v).to(app.topic("counts", partitions=3))
    app.stream(orders).group_by(lambda v: v["user"], name="by-user")

    @app.task
    def charge(amount: int) -> int:
        return amount

    kinds = consumed_topics(app.topology)
    assert kinds["orders"] == "source"
    assert kinds["shop-by-user-repartition"] == "repartition"
    assert kinds["shop-task-charge"] == "task"
    assert {t for t, k in kinds.items() if k == "delay"} == {
        f"shop-delay-{tier}" for tier in ("1s", "10s", "1m", "10m", "1h")
    }
    assert "counts" not in kinds  # written, not consumed


@pytest.mark.parametrize(
    ("topic", "kind"),
    [
        ("shop-by-user-repartition", "repartition"),
        ("shop-task-charge", "task"),
        ("shop-delay-1s", "delay"),
        ("orders", "source"),
        ("other-x-repartition", "source"),
    ],
)
def test_guess_kind(topic: str, kind: str) -> None:
    assert guess_kind("shop", topic) == kind


def status(**changes: object) -> GroupStatus:
    member = MemberStatus("m-1", "shop-42", "/127.0.0.1", None, [("orders", 0)], [("orders", 1)])
    fields: dict[str, object] = {
        "group": "shop",
        "state": "Stable",
        "protocol": "consumer",
        "assignor": "uniform",
        "members": [member],
        "topics": {"orders": "source"},
        "partitions": [
            PartitionLag("orders", 0, 10, 15, 5),
            PartitionLag("orders", 1, None, 7, None),
        ],
        "dlq": DeadLetterSize("shop-dlq", 3),
    }
    fields.update(changes)
    return GroupStatus(**fields)  # type: ignore[arg-type]


def test_json_partitions_have_exactly_the_five_fields() -> None:
    data = orjson.loads(orjson.dumps(status().as_json()))
    assert data["partitions"] == [
        {"topic": "orders", "partition": 0, "committed": 10, "end": 15, "lag": 5},
        {"topic": "orders", "partition": 1, "committed": None, "end": 7, "lag": None},
    ]
    assert data["total_lag"] == 5
    assert data["members"][0]["partitions"] == [["orders", 0]]
    assert data["members"][0]["pending"] == [["orders", 1]]
    assert data["dlq"] == {"topic": "shop-dlq", "records": 3}
    assert {"group", "state", "protocol", "assignor", "topics", "restores"} <= set(data)


def test_owner_is_the_member_holding_the_partition() -> None:
    owned = status()
    assert owned.owner(("orders", 0)) is owned.members[0]
    assert owned.owner(("orders", 1)) is None  # pending, not held yet


def test_restore_reports_are_parsed_and_others_skipped() -> None:
    report = {"start": 100, "target": 500, "host": "box", "pid": 7, "at": 5}
    committed = {
        ("shop-counts-changelog", 0): (200, orjson.dumps(report).decode()),
        ("shop-counts-changelog", 1): (9, None),
        ("shop-counts-changelog", 2): (9, "not json"),
        ("shop-counts-changelog", 3): (9, '{"start": 1}'),
    }
    (parsed,) = parse_reports(committed)
    assert parsed == RestoreProgress("shop-counts-changelog", 0, 100, 200, 500, "box", 7, 5)
    assert parsed.fraction == 0.25 and not parsed.done
    finished = RestoreProgress("c", 0, 0, 500, 500, "box", 7, 5)
    assert finished.done and finished.fraction == 1.0
    assert RestoreProgress("c", 0, 0, 0, 0, "box", 7, 5).fraction == 1.0
    assert restore_group("shop") == "shop-restore"
