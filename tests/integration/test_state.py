"""State stores against the real cluster: restore after restart, tail-only restore on the
same disk, a 1M-key restore, and the memory footprint of RocksDB against memory stores."""

from __future__ import annotations

import dataclasses
import re
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import (
    Names,
    WorkerProcess,
    committed_offsets,
    consume_all,
    produce,
    record_count,
    wait_for,
)

from millstream.config import Settings
from millstream.processors.state.backends import BLOCK_CACHE_BYTES

TABLES = "tests.integration.apps.tables:app"
#: The partitions apps/tables.py declares for its input.
PARTITIONS = 4
#: The line apps/tables.py logs for each SIGUSR1: request number, RSS once trimmed,
#: what RocksDB holds and the memtables' part of it.
MEMORY_REPORT = re.compile(
    r"^memory (\d+): rss ([\d.]+) MB, rocksdb ([\d.]+) MB \(memtables ([\d.]+) MB\)$",
    re.MULTILINE,
)


@pytest.fixture
def input_partitions() -> int:
    return PARTITIONS


def tables_worker(
    names: Names, bootstrap: str, local_dir: Path, log: Path, **env: str
) -> WorkerProcess:
    """A worker of apps/tables.py with its state in ``local_dir``."""
    return WorkerProcess(TABLES, names.env(bootstrap, local_dir, **env), log)


def stop_cleanly(worker: WorkerProcess) -> str:
    """Stops ``worker``, fails unless it exited with 0, and returns its log."""
    code = worker.stop()
    assert code == 0, f"worker exited with {code}:\n{worker.text()[-3000:]}"
    return worker.text()


def memory(worker: WorkerProcess) -> Memory:
    """RSS now, then RSS after the worker handed its freed heap back to the system,
    with what its RocksDB stores hold (apps/tables.py reports on SIGUSR1)."""
    rss = worker.rss_mb()
    request = len(MEMORY_REPORT.findall(worker.text())) + 1

    def report() -> re.Match[str] | None:
        reports = MEMORY_REPORT.finditer(worker.text())
        return next((m for m in reports if int(m[1]) == request), None)

    worker.send_signal(signal.SIGUSR1)
    wait_for(lambda: worker.running() and report() is not None, 60, "the memory report")
    answer = report()
    assert answer is not None
    trimmed, rocksdb, memtables = map(float, answer.groups()[1:])
    return Memory(rss, trimmed, rocksdb, memtables)


@dataclass(frozen=True)
class Memory:
    """A worker's memory in MB: RSS, RSS once freed heap went back to the system, and
    what RocksDB holds of its budget (all of it, and the memtables' part)."""

    rss: float
    trimmed: float
    rocksdb: float
    memtables: float

    @property
    def beside_rocksdb(self) -> float:
        """Trimmed RSS less what RocksDB holds of its budget."""
        return self.trimmed - self.rocksdb

    def __str__(self) -> str:
        return (
            f"RSS {self.rss:.0f} MB, {self.trimmed:.0f} MB trimmed, RocksDB {self.rocksdb:.1f} MB "
            f"(memtables {self.memtables:.1f} MB)"
        )


def committed_records(settings: Settings, group: str, topic: str) -> int:
    """Records of ``topic`` below the offsets ``group`` committed (0 before any commit)."""
    offsets = committed_offsets(settings, group, topic, PARTITIONS)
    return sum(max(offset, 0) for offset in offsets.values())


def restored(log: str) -> int:
    return sum(int(n) for n in re.findall(r"restored \S+: (\d+) changelog records", log))


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_table_state_survives_a_restart(
    store: str, names: Names, settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    keys, rounds = 500, 20
    produce(settings, names.source, ((f"k{i % keys}", b"{}") for i in range(keys * rounds)))
    local = tmp_path / "node"
    env = {"TEST_STORE": store, "TEST_EMIT": "1"}
    first = tables_worker(names, bootstrap_servers, local, tmp_path / "first.log", **env)
    wait_for(
        lambda: first.running() and record_count(settings, names.out) >= keys * rounds,
        90,
        "first outputs",
    )
    stop_cleanly(first)

    produce(settings, names.source, ((f"k{i % keys}", b"{}") for i in range(keys * rounds)))
    second = tables_worker(names, bootstrap_servers, local, tmp_path / "second.log", **env)
    wait_for(
        lambda: second.running() and record_count(settings, names.out) >= 2 * keys * rounds,
        90,
        "outputs",
    )
    log = stop_cleanly(second)

    latest: dict[bytes, int] = {}
    for r in consume_all(settings, names.out):
        latest[r.key] = max(latest.get(r.key, 0), r.json()["count"])
    assert latest == {f"k{i}".encode(): 2 * rounds for i in range(keys)}
    if store == "memory":
        assert restored(log) >= keys, "a memory store restores its changelog in full"
    else:
        assert restored(log) < keys, "RocksDB on the same disk restores only the tail"


def test_million_key_restore_full_then_tail(
    names: Names, settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    keys = 1_000_000
    produce(settings, names.source, ((f"key-{i:07d}", b"{}") for i in range(keys)))

    def rocksdb_worker(local_dir: str, log: str) -> WorkerProcess:
        return tables_worker(
            names, bootstrap_servers, tmp_path / local_dir, tmp_path / log, TEST_STORE="rocksdb"
        )

    builder = rocksdb_worker("a", "builder.log")
    changelog = f"{names.app}-counts-changelog"
    wait_for(
        lambda: builder.running() and record_count(settings, changelog) >= keys,
        300,
        "the 1M-key changelog",
    )
    stop_cleanly(builder)

    fresh = rocksdb_worker("b", "fresh.log")
    wait_for(lambda: fresh.running() and restored(fresh.text()) >= keys, 300, "the full restore")
    full_log = stop_cleanly(fresh)
    again = rocksdb_worker("b", "again.log")
    wait_for(lambda: again.running() and " assigned " in again.text(), 60, "the restart")
    wait_for(lambda: again.running() and "started in group" in again.text(), 60, "startup")
    tail_log = stop_cleanly(again)

    full, tail = restored(full_log), restored(tail_log)
    seconds = [float(s) for s in re.findall(r"store partitions in ([\d.]+)s", full_log)]
    rate = full / max(sum(seconds), 1e-6)
    print(
        f"\nfull restore: {full} records in {sum(seconds):.2f}s "
        f"({rate:,.0f} records/s); restart on the same disk: {tail} records"
    )
    assert full >= keys
    assert tail <= keys // 100, "a restart on the same disk must restore only the tail"


def test_rocksdb_memory_does_not_grow_with_keys(
    names: Names, settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    """Both stores take 1M keys, then 1M more; a worker's memory is read when each phase
    is done, after it handed the heap memory it freed back to the system. Raw RSS is no
    measure: glibc keeps 150-200 MB of freed producer and batch buffers, an amount that
    varies by tens of MB from run to run.

    What RocksDB holds must stay within the budget all its store partitions share
    (backends.BLOCK_CACHE_BYTES), and the rest of the worker's memory must not grow
    with the keys: a million more cost the memory store a dict's worth (about 90 MB),
    and would cost as much a RocksDB store that kept its keys in Python memory too."""
    workers: dict[str, WorkerProcess] = {}
    for store in ("rocksdb", "memory"):
        own = dataclasses.replace(names, app=f"{names.app}-{store}")
        log = tmp_path / f"{store}.log"
        workers[store] = tables_worker(
            own, bootstrap_servers, tmp_path / store, log, TEST_STORE=store
        )
    readings: dict[str, list[Memory]] = {"rocksdb": [], "memory": []}
    for first, last in ((0, 1_000_000), (1_000_000, 2_000_000)):
        produce(settings, names.source, ((f"key-{i:08d}", b"{}") for i in range(first, last)))
        for store, worker in workers.items():
            # Read once the checkpoint that took the last key is over: its buffered
            # changes and write batch would count otherwise.
            group = f"{names.app}-{store}"
            wait_for(
                lambda g=group, w=worker, n=last: (
                    w.running() and committed_records(settings, g, names.source) >= n
                ),
                300,
                f"{store}: {last:,} keys checkpointed",
            )
            readings[store].append(memory(worker))
    growth = {}
    for store, worker in workers.items():
        stop_cleanly(worker)
        early, late = readings[store]
        growth[store] = late.beside_rocksdb - early.beside_rocksdb
        print(f"\n{store}: at 1M keys {early}; at 2M keys {late}")
    shown = {store: [str(r) for r in rs] for store, rs in readings.items()}
    assert growth["memory"] > MEMORY_STORE_GROWTH_MB, (
        f"the memory store's keys went unseen: {shown}"
    )
    assert growth["rocksdb"] < ROCKSDB_GROWTH_MB, (
        f"the RocksDB store's worker grew with its keys beside RocksDB's budget: {shown}"
    )
    budget = BLOCK_CACHE_BYTES / 1024 / 1024
    assert all(r.rocksdb <= budget * 1.1 for r in readings["rocksdb"]), (
        f"RocksDB held more than its {budget:.0f} MB budget: {shown}"
    )


#: 1M more keys grow a memory store's worker by about 90 MB (trimmed; docs/state.md).
MEMORY_STORE_GROWTH_MB = 50
#: What 1M more keys may add to a RocksDB store's worker beside RocksDB's own budget;
#: measured: -5 to +12 MB over five runs (docs/state.md).
ROCKSDB_GROWTH_MB = 40
