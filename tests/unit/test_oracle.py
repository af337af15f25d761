"""The window oracle itself, pinned to docs/windows.md by cases worked out by hand.

Times are small integers (ms); ``z`` is a far-future record of another key that
moves stream time past every window so they all close.
"""

from __future__ import annotations

import oracle
from oracle import count, total

END = ("z", 1_000, 0)


def amount(value: int) -> int:
    return value


def test_tumbling_closes_at_end_plus_grace_and_counts_a_late_record() -> None:
    records = [("a", 1, 1), ("a", 5, 1), ("a", 12, 1), ("a", 9, 1), ("a", 15, 1), ("b", 30, 1)]
    # st=12 closes [0,10) (10 + grace 2 <= 12): the record at 9 is late.
    outcome = oracle.tumbling([records], size=10, grace=2, aggregation=count())
    assert outcome.results == {("a", 0, 10): 2, ("a", 10, 20): 2}
    assert outcome.late == 1  # [30,40) of b is still open at st=30: not emitted


def test_tumbling_record_within_grace_still_counts() -> None:
    records = [("a", 1, 1), ("a", 11, 1), ("a", 9, 1), END]
    # st=11 < 10 + 2: [0,10) is still open for the record at 9.
    outcome = oracle.tumbling([records], size=10, grace=2, aggregation=count())
    assert outcome.results == {("a", 0, 10): 2, ("a", 10, 20): 1}
    assert outcome.late == 0


def test_hopping_windows_overlap() -> None:
    records = [("a", 7, 3), ("a", 12, 4), END]
    outcome = oracle.hopping([records], size=10, advance=5, grace=0, aggregation=total(amount))
    assert outcome.results == {("a", 0, 10): 3, ("a", 5, 15): 7, ("a", 10, 20): 4}


def test_hopping_record_late_for_one_window_is_added_to_the_other() -> None:
    records = [("a", 20, 1), ("a", 12, 1), END]
    # st=20: [5,15) is closed, [10,20) is open (20 < 20 + 1): not late.
    outcome = oracle.hopping([records], size=10, advance=5, grace=1, aggregation=count())
    assert outcome.results == {("a", 10, 20): 1, ("a", 15, 25): 1, ("a", 20, 30): 1}
    assert outcome.late == 0


def test_stream_time_is_per_partition() -> None:
    first = [("a", 100, 1), END]
    second = [("b", 5, 1), ("b", 7, 1)]  # the far-future record is in the other partition
    outcome = oracle.tumbling([first, second], size=10, grace=0, aggregation=count())
    assert outcome.results == {("a", 100, 110): 1}
    assert outcome.late == 0


def test_sliding_left_and_right_windows() -> None:
    records = [("a", 10, 1), ("a", 15, 1), END]
    outcome = oracle.sliding([records], size=10, grace=5, aggregation=count())
    # Left windows [0,10] and [5,15]; right window of 10 is [11,21] holding 15;
    # the right window of 15, [16,26], holds nothing and does not exist.
    assert outcome.results == {("a", 0, 10): 1, ("a", 5, 15): 2, ("a", 11, 21): 1}


def test_sliding_out_of_order_gives_the_same_windows() -> None:
    records = [("a", 15, 1), ("a", 10, 1), END]
    outcome = oracle.sliding([records], size=10, grace=6, aggregation=count())
    assert outcome.results == {("a", 0, 10): 1, ("a", 5, 15): 2, ("a", 11, 21): 1}
    # With grace 4, [0,10] closed at st=15 (15 > 10 + 4), before the record at 10 arrived.
    outcome = oracle.sliding([records], size=10, grace=4, aggregation=count())
    assert outcome.results == {("a", 5, 15): 2, ("a", 11, 21): 1}


def test_sliding_windows_closed_before_their_records_arrive_are_not_emitted() -> None:
    records = [
        ("a", 10, 1),
        ("b", 40, 1),  # st=40: [0,10] of a (closes at 15) is done
        ("a", 28, 1),  # not late (28 + 10 + 5 > 40) but its left window [18,28] closed at 33
        ("a", 32, 1),  # left [22,32] closed at 37; it falls in the right window of 28
        ("a", 20, 1),  # late: 20 + 10 + 5 <= 40
        END,
    ]
    outcome = oracle.sliding([records], size=10, grace=5, aggregation=count())
    assert outcome.results == {("a", 0, 10): 1, ("a", 29, 39): 1, ("b", 30, 40): 1}
    assert outcome.late == 1


def test_sliding_sum_uses_only_records_inside_the_closed_interval() -> None:
    records = [("a", 0, 1), ("a", 10, 2), ("a", 11, 4), END]
    outcome = oracle.sliding([records], size=10, grace=100, aggregation=total(amount))
    assert outcome.results == {
        ("a", -10, 0): 1,
        ("a", 0, 10): 3,  # both ends inclusive
        ("a", 1, 11): 6,  # left window of 11; also the right window of 0
        ("a", 11, 21): 4,  # right window of 10
        # the right window of 11, [12,22], is empty and does not exist
    }


def test_session_merges_two_sessions_bridged_by_a_record() -> None:
    records = [("a", 0, 1), ("a", 10, 2), ("a", 5, 4), END]
    outcome = oracle.session([records], gap=5, grace=20, aggregation=total(amount))
    assert outcome.results == {("a", 0, 10): 7}
    # With grace 2, [0,0] closed at st=10 (0 + 5 + 2 <= 10): 5 only joins [10,10].
    outcome = oracle.session([records], gap=5, grace=2, aggregation=total(amount))
    assert outcome.results == {("a", 0, 0): 1, ("a", 5, 10): 6}


def test_session_closed_sessions_are_not_merged_and_late_records_are_counted() -> None:
    records = [
        ("a", 0, 1),
        ("a", 3, 1),
        ("b", 30, 1),  # st=30 closes [0,3] of a (3 + 5 + 2 <= 30)
        ("a", 6, 1),  # within the gap of the closed session: a new session [6,6], late
        ("a", 26, 1),  # a new session, open (26 + 5 + 2 > 30)
        ("a", 29, 1),  # merges with [26,26]
        END,
    ]
    outcome = oracle.session([records], gap=5, grace=2, aggregation=count())
    assert outcome.results == {("a", 0, 3): 2, ("a", 26, 29): 2, ("b", 30, 30): 1}
    assert outcome.late == 1


def test_session_windows_never_closed_are_not_emitted() -> None:
    outcome = oracle.session([[("a", 0, 1), ("a", 4, 1)]], gap=5, grace=0, aggregation=count())
    assert outcome.results == {}
    assert outcome.late == 0
