"""A task partition's committed offset passes the offsets its consumer never hands
out: transaction markers (every transactional write to a task topic leaves one:
retries forwarded by an exactly-once worker, periodic firings) and aborted records."""

from __future__ import annotations

from millstream.processors.tasks.partition import TaskPartition


def test_offsets_skipped_by_the_consumer_count_as_done() -> None:
    part = TaskPartition("app-task-t", 0)
    part.start_completions(1, None)  # offset 1 is a marker: the next record is at 2
    part.consumed(2)
    assert part.completions is not None
    assert part.completions.committable_offset == 1 + 1  # 1 done, 2 still running
    part.done(2)
    part.consumed(4)  # 3 is the marker of the transaction that wrote 2
    part.done(4)
    assert part.completions.committable_offset == 5
    assert part.completions.metadata() == ""


def test_a_record_seen_again_changes_nothing_and_unfinished_ones_stay_pending() -> None:
    part = TaskPartition("app-task-t", 0)
    part.start_completions(10, None)
    part.consumed(10)
    part.consumed(11)
    part.consumed(13)  # 12 skipped
    part.consumed(11)  # redelivered
    assert part.completions is not None
    part.done(13)
    assert part.completions.committable_offset == 10  # 10 and 11 have not finished
    part.done(10)
    part.done(11)
    assert part.completions.committable_offset == 14
