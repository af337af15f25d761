"""State stores against the real cluster: restore after restart, tail-only restore on the
same disk, a 1M-key restore, and the memory footprint of RocksDB against memory stores."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from support import consume_all, delete_topics, produce, record_count, wait_for

from millstream.config import Settings
from millstream.kafka import TopicAdmin, TopicSpec
from millstream.kafka.clients import make_admin
from millstream.processors.state.backends import BLOCK_CACHE_BYTES

ROOT = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "millstream", "worker", "tests.integration.apps.tables:app"]


@pytest.fixture
def names(
    unique_name: Callable[[str], str], settings: Settings, admin: TopicAdmin
) -> Iterator[dict[str, str]]:
    n = {"app": unique_name("app"), "in": unique_name("in"), "out": unique_name("out")}
    admin.create([TopicSpec(n["in"], 4)])
    yield n
    app = n["app"]
    internal = [f"{app}-counts-changelog", f"{app}-dlq", f"{app}-late"]
    delete_topics(settings, [n["in"], n["out"], *internal])


class WorkerProcess:
    """A worker of tests/integration/apps/tables.py in a subprocess."""

    def __init__(self, names: dict[str, str], bootstrap: str, local_dir: Path, **env: str) -> None:
        self.log_path = local_dir.with_suffix(f".{len(list(local_dir.parent.iterdir()))}.log")
        environment = {
            **os.environ,
            "MILLSTREAM_BOOTSTRAP_SERVERS": bootstrap,
            "MILLSTREAM_LOCAL_DIR": str(local_dir),
            "TEST_APP_ID": names["app"],
            "TEST_IN": names["in"],
            "TEST_OUT": names["out"],
            **env,
        }
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            WORKER, cwd=ROOT, env=environment, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.requests = 0

    def text(self) -> str:
        """The worker's log so far; fails the test at once if the worker has died."""
        text = self.log_path.read_text()
        if self.proc.poll() is not None and self.proc.returncode != 0:
            raise AssertionError(f"worker exited with {self.proc.returncode}:\n{text[-3000:]}")
        return text

    def alive(self) -> bool:
        self.text()
        return True

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.log.close()
        assert code == 0, self.text()[-3000:]
        return self.text()

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]

    def memory(self) -> Memory:
        """RSS now, then RSS after the worker handed its freed heap back to the system,
        with what its RocksDB stores hold (apps/tables.py reports on SIGUSR1)."""
        rss = self.rss_mb()
        self.requests += 1
        self.proc.send_signal(signal.SIGUSR1)
        line = re.compile(
            rf"^memory {self.requests}: rss ([\d.]+) MB, rocksdb ([\d.]+) MB "
            r"\(memtables ([\d.]+) MB\)$",
            re.MULTILINE,
        )
        wait_for(lambda: line.search(self.text()) is not None, 60, "the memory report")
        trimmed, rocksdb, memtables = map(float, line.search(self.text()).groups())  # type: ignore[union-attr]
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
    admin = make_admin(settings)
    answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    partitions = answer[group].result(settings.client_timeout).topic_partitions
    return sum(max(tp.offset, 0) for tp in partitions if tp.topic == topic)


def restored(log: str) -> int:
    return sum(int(n) for n in re.findall(r"restored \S+: (\d+) changelog records", log))


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_table_state_survives_a_restart(
    store: str, names: dict[str, str], settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    keys, rounds = 500, 20
    produce(settings, names["in"], ((f"k{i % keys}", b"{}") for i in range(keys * rounds)))
    local = tmp_path / "node"
    first = WorkerProcess(names, bootstrap_servers, local, TEST_STORE=store, TEST_EMIT="1")
    wait_for(
        lambda: first.alive() and record_count(settings, names["out"]) >= keys * rounds,
        90,
        "first outputs",
    )
    first.stop()

    produce(settings, names["in"], ((f"k{i % keys}", b"{}") for i in range(keys * rounds)))
    second = WorkerProcess(names, bootstrap_servers, local, TEST_STORE=store, TEST_EMIT="1")
    wait_for(
        lambda: second.alive() and record_count(settings, names["out"]) >= 2 * keys * rounds,
        90,
        "outputs",
    )
    log = second.stop()

    latest: dict[bytes, int] = {}
    for r in consume_all(settings, names["out"]):
        latest[r.key] = max(latest.get(r.key, 0), r.json()["count"])
    assert latest == {f"k{i}".encode(): 2 * rounds for i in range(keys)}
    if store == "memory":
        assert restored(log) >= keys, "a memory store restores its changelog in full"
    else:
        assert restored(log) < keys, "RocksDB on the same disk restores only the tail"


def test_million_key_restore_full_then_tail(
    names: dict[str, str], settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> None:
    keys = 1_000_000
    produce(settings, names["in"], ((f"key-{i:07d}", b"{}") for i in range(keys)))
    builder = WorkerProcess(names, bootstrap_servers, tmp_path / "a", TEST_STORE="rocksdb")
    changelog = f"{names['app']}-counts-changelog"
    wait_for(
        lambda: builder.alive() and record_count(settings, changelog) >= keys,
        300,
        "the 1M-key changelog",
    )
    builder.stop()

    fresh = WorkerProcess(names, bootstrap_servers, tmp_path / "b", TEST_STORE="rocksdb")
    wait_for(lambda: restored(fresh.text()) >= keys, 300, "the full restore")
    full_log = fresh.stop()
    again = WorkerProcess(names, bootstrap_servers, tmp_path / "b", TEST_STORE="rocksdb")
    wait_for(lambda: " assigned " in again.text(), 60, "the restart")
    wait_for(lambda: "started in group" in again.text(), 60, "startup")
    tail_log = again.stop()

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
    names: dict[str, str], settings: Settings, bootstrap_servers: str, tmp_path: Path
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
        app = f"{names['app']}-{store}"
        env = {"TEST_STORE": store, "TEST_APP_ID": app}
        workers[store] = WorkerProcess(
            {**names, "app": app}, bootstrap_servers, tmp_path / store, **env
        )
    readings: dict[str, list[Memory]] = {"rocksdb": [], "memory": []}
    for first, last in ((0, 1_000_000), (1_000_000, 2_000_000)):
        produce(settings, names["in"], ((f"key-{i:08d}", b"{}") for i in range(first, last)))
        for store, worker in workers.items():
            # Read once the checkpoint that took the last key is over: its buffered
            # changes and write batch would count otherwise.
            group = f"{names['app']}-{store}"
            wait_for(
                lambda g=group, w=worker, n=last: (
                    w.alive() and committed_records(settings, g, names["in"]) >= n
                ),
                300,
                f"{store}: {last:,} keys checkpointed",
            )
            readings[store].append(worker.memory())
    growth = {}
    for store, worker in workers.items():
        worker.stop()
        early, late = readings[store]
        growth[store] = late.beside_rocksdb - early.beside_rocksdb
        print(f"\n{store}: at 1M keys {early}; at 2M keys {late}")
        app = f"{names['app']}-{store}"
        delete_topics(settings, [f"{app}-counts-changelog", f"{app}-dlq", f"{app}-late"])
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
