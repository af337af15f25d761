"""A broker-free driver for an application's topology, for unit tests.

:class:`TestDriver` runs the pipelines an :class:`~millstream.App` declares in the
test's own process. Records sent to a source topic go through the same steps,
serdes, stores, record collector and checkpoints as in a worker; what the steps
produce lands in in-memory topics that :meth:`TestDriver.read` returns. Records that
fail go to ``{app_id}-dlq`` with the same headers as on a broker, late records to
``{app_id}-late``; repartition topics feed their pipelines, and records sent to a
global table's topic update the table. Time is the driver's: :meth:`TestDriver.advance`
moves the wall clock that idle timeouts and punctuation see.

What it does not do: talk to Kafka, run several workers or rebalance, or restore
state (stores are memory stores, whatever backend the app declares). Keys are spread
over a topic's partitions by a stable hash, not Kafka's own partitioner.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from millstream.kafka import TopicPartition
from millstream.processors.checkpoint import Checkpoint
from millstream.processors.collector import RecordCollector
from millstream.processors.partitions import OwnedPartitions
from millstream.processors.rows import deserialize
from millstream.processors.state.backends import Backend, MemoryBackend
from millstream.processors.state.manager import StateManager, StoreSpec
from millstream.processors.worker_config import WorkerStats
from millstream.sinks.base import SinkContext
from millstream.topics import Topic

if TYPE_CHECKING:
    from millstream.app import App

Headers = list[tuple[str, str | bytes]]


class TestRecord(NamedTuple):
    """A record as :meth:`TestDriver.read` returns it.

    ``key`` and ``value`` are deserialized with the topic's serdes when the app
    declared the topic (and they can be read with them), else they are the bytes on
    the topic. ``headers`` maps each header name to its value decoded as UTF-8.
    """

    key: Any
    value: Any
    timestamp: int
    headers: dict[str, str]
    partition: int
    offset: int


class TestDriver:
    """Runs ``app``'s topology without a broker. Not thread-safe.

    ``start_ms`` is the wall-clock time (epoch ms) the driver starts at: it stamps
    records sent without a timestamp, as a producer stamps them with the time of
    sending. Use it as a context manager, or call :meth:`close`, to close the sinks.
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, app: App, *, start_ms: int | None = None) -> None:
        self.app = app
        self.topology = topology = app.topology
        self.stats = WorkerStats()
        self._now_ms = int(time.time() * 1000) if start_ms is None else start_ms
        self._clock = 0.0
        self._topics = _Topics(topology.topics, topology.partitions_like)
        self._pending: deque[_Message] = deque()
        self._read: dict[str, int] = {}
        self._tables = {table.topic.name: table for table in topology.global_tables}
        self.collector = RecordCollector(
            self.stats, topology.dlq_topic, topology.late_topic, clock=lambda: self._clock
        )
        producer = _MemoryProducer(self._append)
        self.collector.attach(producer)  # type: ignore[arg-type]
        state = _MemoryState(topology.app_id, topology.store_specs()) if topology.stateful else None
        self._owned = OwnedPartitions(topology, state)
        self._checkpoint = Checkpoint(interval=0.0)
        for sink in topology.sinks:
            context = SinkContext(
                topology.app_id,
                app.settings,
                producer,  # type: ignore[arg-type]
                self.collector.sink_dead_letter,
            )
            sink.open(context)
        for roots in topology.sources.values():
            for root in roots:
                root.bind(self.collector)

    # -- the test's side ---------------------------------------------------------------

    def send(
        self,
        topic: Topic | str,
        value: Any,
        key: Any = None,
        timestamp: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Send one record to ``topic`` and process it, and everything it leads to, before
        returning; then checkpoint. A ``bytes`` key or value goes in as it is (a test
        can send what no serde would write); anything else goes through the topic's
        serdes.

        Raises:
            SerializationError: the value or key cannot be serialized with the serdes.
        """
        name = topic if isinstance(topic, str) else topic.name
        declared = self.topology.topics.get(name) or Topic(name)
        raw_key = (
            key if isinstance(key, bytes) or key is None else declared.key_serde.serialize(key)
        )
        raw_value = value if isinstance(value, bytes) else declared.value_serde.serialize(value)
        self._append(
            name, -1, raw_key, raw_value, self._now_ms if timestamp is None else timestamp, headers
        )
        self._run()

    def advance(self, seconds: float) -> None:
        """Move the wall clock forward: idle partitions may close windows, as a worker's
        punctuation does when no record has come for a while."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._clock += seconds
        self._now_ms += int(seconds * 1000)
        self._owned.punctuate(self._clock)
        self._run()

    def read(self, topic: Topic | str) -> list[TestRecord]:
        """The records produced to ``topic`` since the last read of it, in order."""
        name = topic if isinstance(topic, str) else topic.name
        log = self._topics.log(name)
        start, self._read[name] = self._read.get(name, 0), len(log)
        declared = self.topology.topics.get(name)
        return [_record(m, declared) for m in log[start:]]

    def store(self, name: str) -> dict[Any, Any]:
        """Every entry of store (or table) ``name``, over all partitions seen so far."""
        entries: dict[Any, Any] = {}
        for part in self._owned.assigned.values():
            if name in part.stores:
                entries.update(part.stores[name].items())
        return entries

    def close(self) -> None:
        """Close the sinks and stores."""
        for sink in self.topology.sinks:
            sink.close()
        self._owned.close()

    def __enter__(self) -> TestDriver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the worker's side ---------------------------------------------------------------

    def _append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
    ) -> None:
        message = self._topics.append(
            topic, partition, key, value, timestamp or self._now_ms, headers
        )
        table = self._tables.get(topic)
        if table is not None:
            table.apply([message])
        if topic in self.topology.sources:
            self._pending.append(message)

    def _run(self) -> None:
        """Process every pending record, one at a time, then checkpoint."""
        topics, sources, owned = self.topology.topics, self.topology.sources, self._owned
        while self._pending:
            message = self._pending.popleft()
            topic, partition = message.topic(), message.partition()
            self.stats.records_in += 1
            by_topic = self.stats.topic_records_in
            by_topic[topic] = by_topic.get(topic, 0) + 1
            if (topic, partition) not in owned.assigned:
                owned.take([TopicPartition(topic, partition)])
            part = owned.get(topic, partition)
            part.processed(message.offset() + 1)
            rows = deserialize(topics[topic], [message], self.collector.dead_letter)
            if rows:
                for root in sources[topic]:
                    root.process(rows, part)
        committer: Any = _Committer()
        self._checkpoint.commit(committer, self.collector, owned, self.topology.sinks)


class _Message:
    """A record in an in-memory topic, with the accessors of a consumed Kafka message."""

    __slots__ = ("_headers", "_key", "_offset", "_partition", "_timestamp", "_topic", "_value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._timestamp = key, value, timestamp
        self._headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in headers or []]

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers or None

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)  # (TIMESTAMP_CREATE_TIME, ms)

    def error(self) -> None:
        return None


class _Topics:
    """In-memory topics: a log per topic, offsets per partition."""

    def __init__(self, declared: dict[str, Topic], partitions_like: dict[str, str]) -> None:
        self._declared = declared
        self._partitions_like = partitions_like
        self._logs: dict[str, list[_Message]] = {}
        self._ends: dict[tuple[str, int], int] = {}

    def partitions(self, topic: str) -> int:
        declared = self._declared.get(topic)
        if declared is not None and declared.partitions:
            return declared.partitions
        like = self._partitions_like.get(topic)
        return self.partitions(like) if like is not None else 1

    def log(self, topic: str) -> list[_Message]:
        return self._logs.setdefault(topic, [])

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
    ) -> _Message:
        if partition < 0:
            partition = zlib.crc32(key) % self.partitions(topic) if key is not None else 0
        offset = self._ends.get((topic, partition), 0)
        self._ends[(topic, partition)] = offset + 1
        message = _Message(topic, partition, offset, key, value, timestamp, headers)
        self.log(topic).append(message)
        return message


class _MemoryProducer:
    """Stands in for the worker's producer: ``produce`` appends to the in-memory topics."""

    def __init__(self, append: Any) -> None:
        self._append = append

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        callback: Any = None,
        on_delivery: Any = None,
        timestamp: int = 0,
        headers: Headers | None = None,
    ) -> None:
        self._append(topic, partition, key, value, timestamp, headers)

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float | None = None) -> int:
        return 0


class _Committer:
    """Takes the checkpoint's offset commits; there is no group to commit them to."""

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        return None


class _MemoryState(StateManager):
    """Memory stores for every declared store, opened empty: nothing to restore."""

    def __init__(self, app_id: str, specs: list[StoreSpec]) -> None:
        super().__init__(app_id, specs, Path(), restorer=None, admin=None)

    def _backend(self, spec: StoreSpec, partition: int) -> Backend:
        return MemoryBackend(spec.codec())


def _record(message: _Message, declared: Topic | None) -> TestRecord:
    key: Any = message.key()
    value: Any = message.value()
    if declared is not None:
        try:
            key = declared.key_serde.deserialize(key)
            value = declared.value_serde.deserialize(value)
        except Exception:
            key, value = message.key(), message.value()
    headers = {k: v.decode("utf-8", "replace") for k, v in message.headers() or []}
    return TestRecord(
        key, value, message.timestamp()[1], headers, message.partition(), message.offset()
    )
