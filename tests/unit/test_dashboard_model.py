"""The dashboard's snapshot model: rates, lag and members from readings made by hand."""

from __future__ import annotations

from millstream.dashboard import DashboardModel, RateSeries, Reading, WorkerMetrics
from millstream.kafka.groups import GroupDescription, GroupMember


def model() -> DashboardModel:
    """A model whose rates are measured between the last two readings (window 0)."""
    return DashboardModel(
        "shop", inputs=["orders"], outputs=["enriched"], consumed=["orders"], rate_window=0
    )


def group(*members: GroupMember) -> GroupDescription:
    return GroupDescription("shop", "Stable", "consumer", "uniform", 1, members)


def reading(time: float, orders: tuple[int, int], out: int, **extra: object) -> Reading:
    ends = {("orders", 0): orders[0], ("orders", 1): orders[1], ("enriched", 0): out}
    return Reading(time=time, end_offsets=ends, **extra)  # type: ignore[arg-type]


def test_rates_come_from_end_offsets_between_readings() -> None:
    m = model()
    m.add(reading(100.0, (10, 10), 0))
    assert m.snapshot()["throughput"]["in"]["rate"] is None  # one reading: no rate yet
    m.add(reading(102.0, (110, 60), 40))
    m.add(reading(103.0, (210, 60), 90))
    t = m.snapshot()["throughput"]
    assert t["in"]["topics"] == ["orders"] and t["out"]["topics"] == ["enriched"]
    assert t["in"]["total"] == 270 and t["out"]["total"] == 90
    assert t["in"]["points"] == [[102.0, 75.0], [103.0, 100.0]]
    assert t["out"]["points"] == [[102.0, 20.0], [103.0, 50.0]]
    assert t["in"]["rate"] == 100.0


def test_a_total_that_shrinks_starts_afresh_and_a_missing_one_leaves_a_gap() -> None:
    series = RateSeries(history=3, window=0)
    series.add(1.0, 100)
    series.add(2.0, 50)  # topic recreated: never a negative rate
    assert series.rate is None and series.total == 50
    series.add(3.0, 70)
    assert series.rate == 20.0
    series.add(4.0, None)  # unreadable: the next reading starts afresh
    series.add(5.0, 80)
    assert [p[1] for p in series.points] == [20.0]
    for t in (6.0, 7.0, 8.0):
        series.add(t, 80 + (t - 5) * 10)
    assert len(series.points) == 3  # the history is bounded


def test_rates_are_measured_over_the_window() -> None:
    series = RateSeries(window=3.0)
    for t, total in [(0.0, 0), (1.0, 100), (2.0, 100), (3.0, 400), (4.0, 400), (5.0, 700)]:
        series.add(t, total)
    # Bursts of 300 every two seconds: each rate is (total(t) - total(t - 3)) / 3, never
    # the 0 and 300 in turn that the last two readings alone would give.
    assert [p[1] for p in series.points] == [100.0, 50.0, 400 / 3, 100.0, 200.0]


def test_lag_per_partition_with_its_owner() -> None:
    m = model()
    members = (
        GroupMember("m1", "worker-a", "/127.0.0.1", None, (("orders", 0),)),
        GroupMember("m2", "worker-b", "/127.0.0.2", None, (("orders", 1),)),
    )
    m.add(reading(1.0, (100, 50), 7, committed={("orders", 0): 70}, group=group(*members)))
    lag = m.snapshot()["lag"]
    assert lag["partitions"] == [
        {
            "topic": "orders",
            "partition": 0,
            "end": 100,
            "committed": 70,
            "lag": 30,
            "owner": "worker-a",
        },
        {
            "topic": "orders",
            "partition": 1,
            "end": 50,
            "committed": None,
            "lag": None,
            "owner": "worker-b",
        },
    ]
    assert lag["total"] == 30
    assert lag["points"] == [[1.0, 30.0]]


def test_members_carry_their_workers_metrics_rates() -> None:
    m = model()
    member = GroupMember("m1", "worker-a", "/127.0.0.1", None, (("orders", 0), ("orders", 1)))
    url = "http://127.0.0.1:9000/metrics"
    for t, n in ((1.0, 0), (3.0, 400)):
        metrics = WorkerMetrics(url, "worker-a", records_in=n, records_out=n / 2, lag=5)
        m.add(reading(t, (n, 0), 0, group=group(member), workers=[metrics]))
    snap = m.snapshot()
    assert snap["group"]["state"] == "Stable"
    (row,) = snap["group"]["members"]
    assert row["client_id"] == "worker-a" and row["partitions"] == ["orders[0]", "orders[1]"]
    assert (row["in_rate"], row["out_rate"]) == (200.0, 100.0)
    (worker,) = snap["workers"]
    assert worker["up"] and worker["lag"] == 5 and worker["in_rate"] == 200.0


def test_a_worker_that_is_down_is_shown_with_its_error_and_forgotten_when_gone() -> None:
    m = model()
    m.add(reading(1.0, (0, 0), 0, workers=[WorkerMetrics("http://x/metrics", error="refused")]))
    (worker,) = m.snapshot()["workers"]
    assert not worker["up"] and worker["error"] == "refused" and worker["in_rate"] is None
    m.add(reading(2.0, (0, 0), 0))
    assert m.snapshot()["workers"] == []


def test_errors_and_panels_pass_through() -> None:
    m = model()
    m.add(Reading(time=5.0, errors=["group: no answer"]))
    panels = [{"title": "p", "snapshot": {"kind": "bars", "items": {}}}]
    snap = m.snapshot(panels)
    assert snap["errors"] == ["group: no answer"] and snap["panels"] == panels
    assert snap["group"]["members"] == [] and snap["lag"]["total"] is None
