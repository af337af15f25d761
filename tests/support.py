"""The one copy of each helper the tests share: produce and consume back, wait on a
condition, name a test's topics, run workers (in a thread or as ``millstream worker``
processes), reserve ports for private clusters, and run a pytest of its own."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaException

from millstream.config import Settings
from millstream.dev.process import port_in_use
from millstream.kafka import TopicPartition, make_admin, make_consumer, make_producer

ROOT = Path(__file__).resolve().parents[1]
#: Lock files of the base ports that tests hold for their private clusters.
PORT_LOCKS = Path(tempfile.gettempdir()) / "millstream-dev-test-ports"


@dataclass(frozen=True)
class Consumed:
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int
    timestamp: int
    headers: dict[str, bytes]

    def json(self) -> Any:
        return orjson.loads(self.value) if self.value is not None else None

    @classmethod
    def of(cls, m: Any) -> Consumed:
        """The fields of a consumed confluent-kafka message."""
        headers = {k: v for k, v in (m.headers() or [])}
        return cls(m.key(), m.value(), m.partition(), m.offset(), m.timestamp()[1], headers)


def produce(
    settings: Settings,
    topic: str,
    records: Iterable[tuple[str | bytes | None, bytes | None]],
    *,
    timestamps: Iterable[int] | None = None,
    partitions: Iterable[int] | None = None,
) -> int:
    """Produce (key, value) pairs in order and flush; returns the count. ``timestamps`` and
    ``partitions``, when given, hold one entry per record. Fails on delivery errors."""
    errors: list[str] = []
    producer = make_producer(
        settings, on_delivery=lambda err, _msg: err and errors.append(str(err))
    )
    stamps = iter(timestamps) if timestamps is not None else None
    targets = iter(partitions) if partitions is not None else None
    count = 0
    for key, value in records:
        kwargs: dict[str, Any] = {}
        if stamps is not None:
            kwargs["timestamp"] = next(stamps)
        if targets is not None:
            kwargs["partition"] = next(targets)
        while True:
            try:
                producer.produce(topic, value, key, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    assert producer.flush(60) == 0, "records still queued after 60 s"
    assert not errors, f"delivery failed: {errors[:3]}"
    return count


def produce_json(settings: Settings, topic: str, records: Iterable[tuple[str, Any]]) -> int:
    return produce(settings, topic, ((k, orjson.dumps(v)) for k, v in records))


def end_offsets(settings: Settings, topic: str, timeout: float = 30.0) -> dict[int, int]:
    """High watermark of every partition of ``topic`` ({} while the topic does not exist).

    Retries while a new topic's partition leaders are still being elected.
    """
    consumer = make_consumer(settings, f"probe-{uuid.uuid4().hex}")
    deadline = time.monotonic() + timeout
    try:
        while True:
            metadata = consumer.list_topics(topic, timeout=10)
            if topic not in metadata.topics or metadata.topics[topic].error is not None:
                return {}
            try:
                return {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in metadata.topics[topic].partitions
                }
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        consumer.close()


def consume_all(
    settings: Settings, topic: str, *, count: int | None = None, timeout: float = 60.0
) -> list[Consumed]:
    """Read ``topic`` from the beginning up to its current end (or until ``count`` records).

    Fails with a clear message when the records do not arrive within ``timeout``.
    """
    ends = end_offsets(settings, topic)
    consumer = make_consumer(
        settings, f"reader-{uuid.uuid4().hex}", **{"group.protocol": "classic"}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    out: list[Consumed] = []
    positions = dict.fromkeys(ends, 0)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if count is not None and len(out) >= count:
                break
            if count is None and all(positions[p] >= ends[p] for p in ends):
                break
            if time.monotonic() > deadline:
                want = count if count is not None else sum(ends.values())
                raise AssertionError(f"read {len(out)} of {want} records of {topic} in {timeout}s")
            batch = consumer.consume(5000, 0.5)
            # Positions, not record offsets: transaction markers take offsets too.
            for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                positions[tp.partition] = max(positions[tp.partition], tp.offset)
            for m in batch:
                if m.error():
                    continue
                out.append(Consumed.of(m))
    finally:
        consumer.close()
    return out


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.2,
    observed: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout`` seconds, and
    with what ``observed`` says was seen last, when given."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            seen = f"; {observed()}" if observed is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{seen}")
        time.sleep(interval)


def record_count(settings: Settings, topic: str) -> int:
    """Offsets used in ``topic``: the number of records for a non-transactional,
    uncompacted topic; transactional topics also spend offsets on commit markers."""
    return sum(end_offsets(settings, topic).values())


def committed_offsets(
    settings: Settings, group: str, topic: str, partitions: int
) -> dict[int, int]:
    """The offset ``group`` committed on each partition of ``topic`` (negative: none yet)."""
    consumer = make_consumer(settings, group)
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10)}
    finally:
        consumer.close()


def delete_topics(settings: Settings, names: Iterable[str]) -> None:
    admin = make_admin(settings)
    futures = admin.delete_topics(list(names), operation_timeout=10)
    for future in futures.values():
        with contextlib.suppress(Exception):
            future.result(10)


@dataclass(frozen=True)
class Names:
    """One test's names, unique to its run: its app (the consumer group, and the prefix of
    the app's own topics), its input topic and its output topic (or output prefix)."""

    app: str
    source: str
    out: str

    @property
    def dlq(self) -> str:
        return f"{self.app}-dlq"

    @property
    def late(self) -> str:
        return f"{self.app}-late"

    def env(self, bootstrap: str, local_dir: Path | None = None, **extra: str) -> dict[str, str]:
        """The environment of a worker of a test app (tests/integration/apps) on these names:
        TEST_APP_ID, TEST_IN, TEST_OUT, the cluster, the state directory, and ``extra``."""
        env = {
            **os.environ,
            "MILLSTREAM_BOOTSTRAP_SERVERS": bootstrap,
            "TEST_APP_ID": self.app,
            "TEST_IN": self.source,
            "TEST_OUT": self.out,
        }
        if local_dir is not None:
            env["MILLSTREAM_LOCAL_DIR"] = str(local_dir)
        return {**env, **extra}


class TopicReader:
    """Reads a topic from the beginning, incrementally, as a read_committed consumer.

    ``poll()`` takes what arrived since the last call; ``records`` holds everything read.
    """

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.records: list[Consumed] = []
        self._consumer = make_consumer(settings, f"reader-{uuid.uuid4().hex}")
        partitions: dict[int, int] = {}
        wait_for(
            lambda: bool(partitions.update(end_offsets(settings, topic)) or partitions),
            60,
            f"topic {topic} to exist",
        )
        self._consumer.assign([TopicPartition(topic, p, 0) for p in partitions])

    def poll(self, seconds: float = 0.5) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = self._consumer.consume(10000, 0.2)
            for m in batch:
                if m.error():
                    continue
                self.records.append(Consumed.of(m))
            if not batch:
                break
        return len(self.records)

    def close(self) -> None:
        self._consumer.close()


class ThreadedWorker:
    """A worker of ``app`` running in a thread of the test process; ``stop()`` returns
    its counters and re-raises whatever ended it."""

    def __init__(self, app: Any) -> None:
        self.worker = app.worker()
        self.stats: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.stats = self.worker.run(install_signal_handlers=False)
        except BaseException as exc:
            self.error = exc

    def running(self) -> bool:
        """True while the worker runs; fails at once, with its error, when it stopped."""
        if not self.thread.is_alive():
            raise AssertionError(f"the worker stopped early: {self.error!r}") from self.error
        return True

    def stop(self) -> Any:
        self.worker.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "worker did not stop within 60 s"
        if self.error:
            raise self.error
        assert self.stats is not None
        return self.stats


class WorkerProcess:
    """``millstream worker <app>`` in a subprocess, its output (stdout and stderr)
    appended to ``log``.

    ``app`` is a ``module:attribute`` reference (tests/integration/apps); ``env`` is the
    process's whole environment (:meth:`Names.env` makes one). :meth:`text` is what this
    process wrote, even when a predecessor wrote to the same file before it.
    """

    def __init__(
        self,
        app: str,
        env: Mapping[str, str],
        log: Path,
        *,
        processes: int = 1,
        args: Sequence[str] = (),
    ) -> None:
        self.log = log
        self._start = log.stat().st_size if log.exists() else 0
        command = [sys.executable, "-m", "millstream", "worker", app, *args]
        if processes != 1:
            command += ["--processes", str(processes)]
        # The child writes to its own copy of the descriptor: the parent's can close.
        with log.open("ab") as handle:
            self._process = subprocess.Popen(
                command, cwd=ROOT, env=dict(env), stdout=handle, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def exit_code(self) -> int | None:
        """The exit code, None while the process runs (negative: ended by that signal)."""
        return self._process.poll()

    def text(self) -> str:
        """What this process has logged so far."""
        with self.log.open("rb") as handle:
            handle.seek(self._start)
            return handle.read().decode(errors="replace")

    def running(self) -> bool:
        """True while the process runs; fails at once, with its log, when it exited."""
        code = self.exit_code
        if code is not None:
            raise AssertionError(f"worker {self.pid} exited with {code}:\n{self.text()[-3000:]}")
        return True

    def owned(self, topic: str) -> set[int]:
        """The partitions of ``topic`` this process owns, by its assigned/revoked/lost lines."""
        owned: set[int] = set()
        pattern = re.compile(re.escape(topic) + r"\[(\d+)\]")
        for line in self.text().splitlines():
            if f"[{self.pid}] " not in line:
                continue
            partitions = {int(p) for p in pattern.findall(line)}
            if " assigned " in line:
                owned |= partitions
            elif " revoked " in line or " lost " in line:
                owned -= partitions
        return owned

    def rss_mb(self) -> float:
        """The process's resident memory, in MB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+)", status)
        assert match is not None, status
        return int(match[1]) / 1024

    def send_signal(self, signum: signal.Signals) -> None:
        """Sends ``signum`` (SIGSTOP and SIGCONT to pause a worker, SIGUSR1 to a test app
        that reports on it)."""
        self._process.send_signal(signum)

    def terminate(self) -> None:
        """SIGTERM, unless the process has ended. Never twice: a second SIGTERM kills a
        worker that is still shutting down (exit code -15)."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """The exit code once the process ended; None when it still runs after ``timeout``."""
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code; a process still running after ``timeout`` seconds
        is killed (exit code -9)."""
        self.terminate()
        code = self.wait(timeout)
        if code is None:
            self.kill()
            code = self._process.wait()
        return code

    def kill(self) -> None:
        """SIGKILL, unless the process has ended, and wait until it is gone."""
        self._process.kill()
        self._process.wait(30)


def reserve_base_port(
    nodes: int, reservations: ExitStack, first: int = 29100, last: int = 29990
) -> int:
    """A base port in ``first``-``last`` for a private ``nodes``-node local cluster: its
    2*nodes ports (a broker and a controller per node) are free, and no other test holds it.

    The hold is a lock file, released when ``reservations`` closes, so that pytest
    sessions running side by side never take the same ports (a port a test frees for a
    moment, stopping a node it starts again, does not look free to another session).
    Skips the test when every base port is taken.
    """
    PORT_LOCKS.mkdir(exist_ok=True)
    for base in range(first, last, 10):
        lock = (PORT_LOCKS / f"{base}.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        if any(port_in_use(base + offset) for offset in range(2 * nodes)):
            lock.close()
            continue
        reservations.callback(lock.close)
        return base
    pytest.skip(f"no free ports in {first}-{last}")


def run_pytest(
    directory: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """A pytest run of its own over ``directory`` (no cache written), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        cwd=directory,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
