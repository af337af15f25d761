"""Windowed aggregations against the real cluster, checked by an independent oracle.

The expected results come from ``tests/oracle.py``, written from docs/windows.md
without the implementation. Stream time is per partition, so every record is
produced to an explicit partition (a stable hash of its key) in a known order,
and the oracle replays each partition in that order. One sentinel per partition,
far ahead in event time and with a key of its own, closes the last windows.
"""

from __future__ import annotations

import random
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import oracle
import orjson
import pytest
from apps import windowed
from support import (
    Names,
    ThreadedWorker,
    WorkerProcess,
    committed_offsets,
    consume_all,
    produce,
    record_count,
    wait_for,
)

from millstream import App
from millstream.config import Settings, load_settings
from millstream.processors import windows

WINDOWED = "tests.integration.apps.windowed:app"
P = windowed.PARTITIONS
SENTINEL = "~end"

Row = tuple[int, str, dict[str, Any]]  # (partition, key, value), in production order
WindowId = tuple[str, int, int]


# -- input ---------------------------------------------------------------------------


def partition_of(key: str) -> int:
    return zlib.crc32(key.encode()) % P


def generate(
    n: int, *, keys: int, late: int, span_ms: int, seed: int, jitter_ms: int = 3000
) -> list[Row]:
    """``n`` records over ``span_ms`` of event time ending a minute ago, each up to
    ``jitter_ms`` out of order, ``late`` of them 20-60 s behind, then the sentinels."""
    rng = random.Random(seed)
    base = int(time.time() * 1000) - span_ms - 60_000
    far_behind = set(rng.sample(range(n // 10, n), late))
    rows: list[Row] = []
    for i in range(n):
        key = f"card-{rng.randrange(keys)}"
        nominal = base + i * span_ms // n
        shift = rng.randint(20_000, 60_000) if i in far_behind else rng.randint(0, jitter_ms)
        rows.append(
            (partition_of(key), key, {"ts": nominal - shift, "amount": rng.randint(1, 500)})
        )
    return rows + sentinels(base + span_ms + 60_000)


def sentinels(ts: int) -> list[Row]:
    return [(p, f"{SENTINEL}-{p}", {"ts": ts, "amount": 0}) for p in range(P)]


def by_partition(rows: Iterable[Row]) -> list[list[oracle.Record]]:
    partitions: list[list[oracle.Record]] = [[] for _ in range(P)]
    for partition, key, value in rows:
        partitions[partition].append((key, value["ts"], value))
    return partitions


def produce_rows(settings: Settings, topic: str, rows: list[Row]) -> None:
    """Produce each row to its own partition, in order; fails on delivery errors."""
    records = ((key, orjson.dumps(value)) for _, key, value in rows)
    produce(settings, topic, records, partitions=(partition for partition, _, _ in rows))


# -- expected and actual results --------------------------------------------------------


def amount(value: dict[str, Any]) -> int:
    return int(value["amount"])


def expected_results(rows: list[Row]) -> dict[str, oracle.Outcome]:
    """What the four branches of apps/windowed.py must emit, by the oracle."""
    parts = by_partition(rows)
    w = windowed
    return {
        "tumbling": oracle.tumbling(parts, w.TUMBLING_SIZE, w.TUMBLING_GRACE, oracle.count()),
        "hopping": oracle.hopping(
            parts, w.HOPPING_SIZE, w.HOPPING_ADVANCE, w.HOPPING_GRACE, oracle.total(amount)
        ),
        "sliding": oracle.sliding(parts, w.SLIDING_SIZE, w.SLIDING_GRACE, oracle.count()),
        "session": oracle.session(parts, w.SESSION_GAP, w.SESSION_GRACE, oracle.total(amount)),
    }


def emitted(settings: Settings, topic: str) -> dict[WindowId, list[Any]]:
    """Every value emitted for each window of ``topic``, in emission order."""
    values: dict[WindowId, list[Any]] = defaultdict(list)
    for record in consume_all(settings, topic, timeout=120):
        assert record.key is not None, f"a result on {topic} has no key"
        result = record.json()
        values[(record.key.decode(), result["start"], result["end"])].append(result["value"])
    return values


def without_sentinels(values: dict[WindowId, Any]) -> dict[WindowId, Any]:
    return {w: v for w, v in values.items() if not w[0].startswith(SENTINEL)}


def describe_difference(
    kind: str, expected: dict[WindowId, Any], actual: dict[WindowId, Any]
) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    wrong = sorted(w for w in set(expected) & set(actual) if expected[w] != actual[w])
    lines = [
        f"{kind}: {len(expected)} expected, {len(actual)} emitted; "
        f"{len(missing)} missing, {len(extra)} unexpected, {len(wrong)} with a wrong value"
    ]
    lines += [f"  missing {w} = {expected[w]!r}" for w in missing[:5]]
    lines += [f"  unexpected {w} = {actual[w]!r}" for w in extra[:5]]
    lines += [f"  wrong {w}: expected {expected[w]!r}, got {actual[w]!r}" for w in wrong[:5]]
    return "\n".join(lines)


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def input_partitions() -> int:
    return P


def local_settings(bootstrap_servers: str, local_dir: Path) -> Settings:
    return load_settings(bootstrap_servers=bootstrap_servers, local_dir=local_dir)


# -- 1. every window kind, exactly ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_200k_records_through_four_window_kinds_match_the_oracle(
    store: windowed.StoreKind,
    names: Names,
    settings: Settings,
    bootstrap_servers: str,
    tmp_path: Path,
) -> None:
    rows = generate(200_000, keys=2000, late=300, span_ms=200_000, seed=11)
    expected = expected_results(rows)
    produce_rows(settings, names.source, rows)
    app = windowed.windowed_app(
        names.app,
        names.source,
        names.out,
        store=store,
        settings=local_settings(bootstrap_servers, tmp_path),
    )
    outputs = windowed.output_topics(names.out)
    started = time.monotonic()
    worker = ThreadedWorker(app)
    try:
        wait_for(
            lambda: (
                worker.running()
                and all(
                    record_count(settings, outputs[kind]) >= len(expected[kind].results)
                    for kind in windowed.KINDS
                )
            ),
            150,
            "every expected window result",
            interval=1.0,
        )
    finally:
        stats = worker.stop()
    print(f"{store}: 200k records through four windows in {time.monotonic() - started:.1f}s")

    failures = []
    for kind in windowed.KINDS:
        values = without_sentinels(emitted(settings, outputs[kind]))
        repeated = {w: v for w, v in values.items() if len(v) > 1}
        assert not repeated, f"{kind}: windows emitted more than once: {list(repeated.items())[:5]}"
        actual = {w: v[0] for w, v in values.items()}
        if actual != expected[kind].results:
            failures.append(describe_difference(kind, expected[kind].results, actual))
    assert not failures, "\n".join(failures)
    late = {kind: outcome.late for kind, outcome in expected.items()}
    assert stats.late_records == sum(late.values()), f"oracle late records: {late}"
    assert stats.records_in == len(rows)


# -- 2. kill -9 and a replacement worker -----------------------------------------------------


def slow_worker(names: Names, bootstrap: str, local_dir: Path, log: Path) -> WorkerProcess:
    """A worker of apps/windowed.py on RocksDB, 60 µs a record: slow enough for a kill
    to land in the middle of the run."""
    env = names.env(bootstrap, local_dir, TEST_STORE="rocksdb", TEST_SLOW_US="60")
    return WorkerProcess(WINDOWED, env, log)


@pytest.mark.slow
def test_kill_9_of_a_worker_loses_no_window_and_changes_no_value(
    names: Names, settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    rows = generate(100_000, keys=1000, late=200, span_ms=100_000, seed=23)
    expected = {kind: outcome.results for kind, outcome in expected_results(rows).items()}
    total = sum(len(results) for results in expected.values())
    outputs = windowed.output_topics(names.out)
    started = time.monotonic()
    first = slow_worker(names, bootstrap_servers, tmp_path / "a", tmp_path / "a.log")
    second = slow_worker(names, bootstrap_servers, tmp_path / "b", tmp_path / "b.log")
    workers = [first, second]
    try:
        wait_for(
            lambda: (
                first.running()
                and second.running()
                and bool(first.owned(names.source) and second.owned(names.source))
            ),
            60,
            "both workers to get partitions of the input",
        )
        produce_rows(settings, names.source, rows)
        # Kill once every partition has checkpointed some progress, so the victim has
        # state and results behind it, and uncommitted work in flight.
        wait_for(
            lambda: (
                first.running()
                and second.running()
                and min(committed_offsets(settings, names.app, names.source, P).values()) > 5000
            ),
            60,
            "every input partition to commit progress",
        )
        victim = first.owned(names.source)
        first.kill()
        at_kill = _results(settings, list(outputs.values()))
        assert victim, "the killed worker owned no partition"
        assert at_kill < total, "the run finished before the kill; slow the workers down"
        # The replacement reuses the killed worker's state directory, like a restarted pod.
        replacement = slow_worker(names, bootstrap_servers, tmp_path / "a", tmp_path / "a.log")
        workers.append(replacement)
        wait_for(
            lambda: (
                second.running()
                and replacement.running()
                and _complete(settings, outputs, expected)
            ),
            150,
            "every expected window result after the kill (see a.log, b.log)",
            interval=2.0,
        )
    finally:
        for worker in workers:
            worker.stop(30)

    failures = []
    repeats = {}
    for kind in windowed.KINDS:
        values = without_sentinels(emitted(settings, outputs[kind]))
        inconsistent = {w: v for w, v in values.items() if len(set(map(orjson.dumps, v))) > 1}
        assert not inconsistent, f"{kind}: a window emitted different values: {inconsistent}"
        repeats[kind] = sum(len(v) - 1 for v in values.values())
        actual = {w: v[0] for w, v in values.items()}
        if actual != expected[kind]:
            failures.append(describe_difference(kind, expected[kind], actual))
    print(
        f"kill -9 of the owner of partitions {sorted(victim)}: {at_kill} of {total} results "
        f"before the kill; repeated after it: {repeats}; "
        f"{time.monotonic() - started:.1f}s"
    )
    assert not failures, "\n".join(failures)


def _results(settings: Settings, topics: list[str]) -> int:
    return sum(record_count(settings, topic) for topic in topics)


def _complete(
    settings: Settings, outputs: dict[str, str], expected: dict[str, dict[WindowId, Any]]
) -> bool:
    counts = {kind: record_count(settings, outputs[kind]) for kind in windowed.KINDS}
    if any(counts[kind] < len(expected[kind]) for kind in windowed.KINDS):
        return False
    return all(
        set(expected[kind]) <= set(emitted(settings, outputs[kind])) for kind in windowed.KINDS
    )


# -- 3. current() ---------------------------------------------------------------------------


def counting_app(
    names: Names,
    settings: Settings,
    window: windows.Window,
    *,
    current: bool = False,
    **options: Any,
) -> App:
    """One windowed count of ``names.source`` to ``names.out``; ``options`` go to ``.window``."""
    app = App(names.app, settings=settings, commit_interval=0.5)
    source = app.topic(names.source, partitions=P)
    output = app.topic(names.out, partitions=P)
    counts = (
        app.stream(source, timestamp=lambda v: v["ts"])
        .group_by_key()
        .window(window, name="counts", **options)
        .count()
    )
    (counts.current() if current else counts.final()).to(output)
    return app


def test_current_emits_every_update_and_ends_on_the_final_value(
    names: Names, settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    rows = generate(5000, keys=50, late=20, span_ms=60_000, seed=5)
    expected = oracle.tumbling(by_partition(rows), 10_000, 1_000, oracle.count())
    app = counting_app(
        names,
        local_settings(bootstrap_servers, tmp_path),
        windows.Tumbling(timedelta(seconds=10), grace=timedelta(seconds=1)),
        current=True,
    )
    updates = len(rows) - expected.late  # every record not late updates one window
    produce_rows(settings, names.source, rows)
    worker = ThreadedWorker(app)
    try:
        wait_for(
            lambda: worker.running() and record_count(settings, names.out) >= updates,
            60,
            "every update",
        )
    finally:
        stats = worker.stop()

    values = without_sentinels(emitted(settings, names.out))
    assert set(expected.results) <= set(values), "a closed window never had an update"
    not_counting = {w: v for w, v in values.items() if v != list(range(1, len(v) + 1))}
    assert not not_counting, f"updates that are not 1, 2, 3...: {list(not_counting.items())[:5]}"
    wrong = {w: (v[-1], expected.results[w]) for w, v in values.items() if w in expected.results}
    wrong = {w: pair for w, pair in wrong.items() if pair[0] != pair[1]}
    assert not wrong, f"last update differs from the final value (got, expected): {wrong}"
    assert record_count(settings, names.out) == updates
    assert stats.late_records == expected.late


# -- 4. late records to the late topic -------------------------------------------------------


def test_late_records_go_to_the_late_topic_with_the_reason(
    names: Names, settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    base = (int(time.time() * 1000) // 10_000 - 30) * 10_000  # a window boundary
    key = "card-7"
    partition = partition_of(key)
    on_time = [(partition, key, {"ts": base + i * 1000, "amount": i}) for i in range(15)]
    # Stream time is base + 14 s: [base, base + 10 s) closed (grace 2 s); these are late.
    late = [(partition, key, {"ts": base + 1000 + i, "amount": 100 + i}) for i in range(3)]
    app = counting_app(
        names,
        local_settings(bootstrap_servers, tmp_path),
        windows.Tumbling(timedelta(seconds=10), grace=timedelta(seconds=2)),
        late="topic",
    )
    produce_rows(settings, names.source, on_time + late + sentinels(base + 60_000))
    worker = ThreadedWorker(app)
    try:
        wait_for(
            lambda: worker.running() and record_count(settings, names.late) >= len(late),
            30,
            "the late records",
        )
        wait_for(
            lambda: worker.running() and record_count(settings, names.out) >= 2,
            30,
            "the two windows of card-7",
        )
    finally:
        stats = worker.stop()

    letters = consume_all(settings, names.late)
    assert [orjson.loads(r.value or b"") for r in letters] == [v for _, _, v in late]
    for letter in letters:
        assert letter.key == key.encode()
        assert b"late" in letter.headers["millstream.error"].lower(), letter.headers
        assert letter.headers["millstream.source.topic"] == names.source.encode()
        assert letter.headers["millstream.source.partition"] == str(partition).encode()
    assert stats.late_records == len(late)
    counts = {w: v for w, v in without_sentinels(emitted(settings, names.out)).items()}
    assert counts == {(key, base, base + 10_000): [10], (key, base + 10_000, base + 20_000): [5]}


# -- 5. idle partitions ---------------------------------------------------------------------


def test_idle_timeout_closes_the_last_windows_without_more_records(
    names: Names, settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    rows = generate(2000, keys=40, late=0, span_ms=8_000, seed=3, jitter_ms=500)[:-P]
    # Nothing follows the records: the oracle's sentinels stand for idle time passing.
    expected = oracle.tumbling(by_partition(rows + sentinels(2**62)), 2_000, 500, oracle.count())
    app = counting_app(
        names,
        local_settings(bootstrap_servers, tmp_path),
        windows.Tumbling(timedelta(seconds=2), grace=timedelta(milliseconds=500)),
        idle_timeout=timedelta(seconds=1),
    )
    produce_rows(settings, names.source, rows)
    worker = ThreadedWorker(app)
    try:
        wait_for(
            lambda: worker.running() and record_count(settings, names.out) >= len(expected.results),
            30,
            "idle partitions to close their last windows",
        )
    finally:
        worker.stop()
    values = emitted(settings, names.out)
    assert {w: v[0] for w, v in values.items()} == expected.results
    assert all(len(v) == 1 for v in values.values())
