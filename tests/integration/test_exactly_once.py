"""Exactly-once against the real cluster: a paused (zombie) worker is fenced and no
output is duplicated or lost."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from eos_support import (
    EosTopics,
    closers,
    feed,
    read_outcome,
    start_worker,
    transactions,
    window_oracle,
)
from support import Names, TopicReader, wait_for

from millstream.config import Settings


@pytest.fixture
def input_partitions() -> int:
    return 6  # apps/eos.py's default TEST_PARTITIONS


@pytest.fixture
def topics(names: Names) -> EosTopics:
    return EosTopics.of(names)


def assigned_count(log: Path) -> int:
    return log.read_text(errors="replace").count(" assigned ")


def test_a_paused_zombie_worker_is_fenced_and_nothing_is_duplicated(
    topics: EosTopics, settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    cards, n = 200, 30_000
    records = transactions(n, cards)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    env = {"TEST_SLOW_US": "300"}
    workers = [
        start_worker(topics, bootstrap_servers, tmp_path / "state", log, **env) for log in logs
    ]
    reader = TopicReader(settings, topics.enriched)
    try:
        wait_for(lambda: all(assigned_count(log) for log in logs), 60, "both workers assigned")
        feed(settings, topics, records)
        wait_for(lambda: reader.poll() >= 3000, 90, "first committed outputs")

        zombie, survivor = workers[0], workers[1]
        before = assigned_count(logs[1])
        zombie.send_signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        # The group notices after the session timeout and gives the survivor everything.
        wait_for(lambda: assigned_count(logs[1]) > before, 60, "the survivor to take over")
        # Stay paused past the transaction timeout too, then wake the zombie up.
        wait_for(lambda: time.monotonic() - paused_at > 12, 20, "the pause", interval=0.5)
        zombie.send_signal(signal.SIGCONT)
        wait_for(
            lambda: "fenced" in logs[0].read_text() or "lost" in logs[0].read_text(),
            60,
            "the zombie to notice it was fenced",
        )
        wait_for(lambda: reader.poll() >= n, 180, "all records processed")
        feed(settings, topics, closers(cards))
        expected = window_oracle(records)
        counts = TopicReader(settings, topics.counts)
        wait_for(lambda: counts.poll() >= len(expected), 120, "all window counts")
        counts.close()
        assert survivor.exit_code is None, "the survivor must still run"
    finally:
        reader.close()
        codes = [w.stop() for w in workers]
    outcome = read_outcome(settings, topics)
    print(
        f"\nzombie test: {sum(outcome.enriched_ids.values())} outputs for {n} inputs, "
        f"{len(outcome.values)} windows, {outcome.duplicates()} duplicates"
    )
    assert set(outcome.enriched_ids) == set(range(n))
    assert outcome.duplicates() == 0
    assert outcome.values == window_oracle(records)
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]
