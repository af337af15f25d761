"""The low-level processor API: a function per record with access to tables.

```python
balances = app.table("balances", backend="rocksdb")

@app.processor(payments, tables=[balances])
def track(record, ctx):
    table = ctx.table("balances")
    table[record.key] = table.get(record.key, 0) + record.value["amount"]
    ctx.send(alerts, record.key, {"balance": table[record.key]})
```

Table changes are buffered and checkpointed with the consumed offsets; a
function that raises sends its record to the dead-letter topic (changes it
made to tables before raising are kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from millstream.processors.assigned import AssignedPartition
from millstream.processors.operations import StatefulStep
from millstream.processors.rows import Row
from millstream.processors.state.manager import StoreKind, StoreSpec
from millstream.processors.state.store import StorePartition
from millstream.topics import Topic


class Record(NamedTuple):
    """One input record as a processor function sees it."""

    key: Any
    value: Any
    timestamp: int
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Table:
    """A key-value table declared with ``app.table(name)``; partitioned like its input."""

    name: str
    backend: StoreKind = "memory"


class ProcessorContext:
    """What a processor function can do besides reading its record."""

    def __init__(self, step: ProcessorStep) -> None:
        self._step = step
        self._part: AssignedPartition | None = None
        self._row: Row | None = None

    def bind(self, part: AssignedPartition | None, row: Row | None) -> None:
        """Point the context at the record being processed (the runtime calls this)."""
        self._part, self._row = part, row

    @property
    def partition(self) -> int:
        assert self._part is not None
        return self._part.partition

    @property
    def timestamp(self) -> int:
        """Event time of the current record (epoch ms)."""
        assert self._row is not None
        return self._row[2]

    def table(self, name: str) -> StorePartition:
        """This partition's view of table ``name``: ``get``, ``[]``, ``set``, ``delete``, ``in``."""
        assert self._part is not None
        return self._part.store(name)

    def send(self, topic: Topic, key: Any, value: Any, *, timestamp: int | None = None) -> None:
        """Produce a record to ``topic`` (declared with ``app.topic``), with its serdes.

        The record is part of this checkpoint: durable before the input offset is committed.
        """
        assert self._row is not None and self._step.collector is not None
        self._step.collector.send(
            topic.name,
            topic.key_serde.serialize(key),
            topic.value_serde.serialize(value),
            self._row[2] if timestamp is None else timestamp,
        )


class ProcessorStep(StatefulStep):
    """Calls a user function for each record, with its tables attached."""

    def __init__(
        self, fn: Callable[[Record, ProcessorContext], None], source: str, tables: list[Table]
    ) -> None:
        super().__init__()
        self.fn = fn
        self.source = source
        self.tables = tables
        self.name = f"processor({getattr(fn, '__qualname__', fn)})"
        self._context = ProcessorContext(self)

    def store_specs(self) -> list[StoreSpec]:
        return [StoreSpec(t.name, self.source, t.backend) for t in self.tables]

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        fn, ctx = self.fn, self._context
        bind = ctx.bind
        topic, partition = part.topic, part.partition
        for row in rows:
            bind(part, row)
            try:
                fn(Record(row[0], row[1], row[2], topic, partition, row[3].offset()), ctx)
            except Exception as exc:
                self.fail(row, exc)
        bind(None, None)
