"""Global tables (a compacted topic materialised on every worker) and stream-table joins."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from millstream.config import Settings
from millstream.errors import ConfigurationError
from millstream.kafka import Consumer, TopicPartition, make_consumer
from millstream.processors.assigned import AssignedPartition
from millstream.processors.operations import Step
from millstream.processors.rows import Row
from millstream.topics import Topic

log = logging.getLogger("millstream.tables")


class GlobalTable:
    """The latest value of every key of ``topic``, on every worker.

    On worker start the whole topic is read before any record is processed; after
    that the table follows the topic as the worker runs. A tombstone deletes a key.
    Meant for small reference data: everything is held in memory.
    """

    def __init__(self, topic: Topic, name: str | None = None) -> None:
        self.topic = topic
        self.name = name or topic.name
        self.data: dict[Any, Any] = {}
        self._consumer: Consumer | None = None

    def get(self, key: Any, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __len__(self) -> int:
        return len(self.data)

    def start(self, settings: Settings) -> None:
        """Assign every partition from the beginning and read up to the current end."""
        overrides: dict[str, Any] = {"fetch.wait.max.ms": 10}
        consumer = make_consumer(settings, f"global-table-{self.topic.name}", **overrides)
        metadata = consumer.list_topics(self.topic.name, timeout=settings.client_timeout)
        partitions = list(metadata.topics[self.topic.name].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(self.topic.name, p), timeout=30)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(self.topic.name, p, 0) for p in partitions])
        self._consumer = consumer
        began, positions = time.monotonic(), dict.fromkeys(partitions, 0)
        while any(positions[p] < ends[p] for p in partitions):
            for m in self.apply(consumer.consume(10000, 0.5)):
                positions[m.partition()] = m.offset() + 1
        log.info(
            "global table %s: %d keys loaded in %.2fs",
            self.name,
            len(self.data),
            time.monotonic() - began,
        )

    def poll(self) -> None:
        """Apply whatever arrived on the topic since the last call; does not block."""
        if self._consumer is not None:
            self.apply(self._consumer.consume(1000, 0))

    def apply(self, messages: list[Any]) -> list[Any]:
        """Apply records of the table's topic; returns those read (bad ones are skipped)."""
        key_of, value_of = self.topic.key_serde.deserialize, self.topic.value_serde.deserialize
        data, applied = self.data, []
        for m in messages:
            if m.error() is not None:
                continue
            try:
                key = key_of(m.key())
                raw = m.value()
                if raw is None:
                    data.pop(key, None)
                else:
                    data[key] = value_of(raw)
            except Exception as exc:  # a bad table record must not stop the table
                log.warning(
                    "global table %s: skipped a record at %d: %s", self.name, m.offset(), exc
                )
            applied.append(m)
        return applied

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class JoinStep(Step):
    """Looks each record up in a global table and merges the table value into it."""

    def __init__(
        self,
        table: GlobalTable,
        on: Callable[[Any], Any] | None,
        how: Literal["inner", "left"],
        merge: Callable[[Any, Any], Any] | None,
    ) -> None:
        super().__init__()
        if how not in ("inner", "left"):
            raise ConfigurationError("how", f"must be 'inner' or 'left', not {how!r}")
        self.table = table
        self.on = on
        self.inner = how == "inner"
        self.merge = merge or _default_merge(table.name)
        self.name = f"join({table.name})"

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        data, on, merge, inner = self.table.data, self.on, self.merge, self.inner
        out: list[Row] = []
        for row in rows:
            try:
                found = data.get(on(row[1]) if on is not None else row[0])
                if found is None and inner:
                    continue
                out.append((row[0], merge(row[1], found), row[2], row[3]))
            except Exception as exc:
                self.fail(row, exc)
        self.emit(out, part)


def _default_merge(name: str) -> Callable[[Any, Any], Any]:
    def merge(value: Any, found: Any) -> Any:
        if isinstance(value, dict):
            return {**value, name: found}
        return (value, found)

    return merge
