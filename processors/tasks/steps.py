"""The root steps of task topics and delay tiers: they hand their runs to the
worker's task runtime, which the runtime sets when the worker starts."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from millstream.errors import ConfigurationError
from millstream.processors.assigned import AssignedPartition
from millstream.processors.operations import StatefulStep, Step
from millstream.processors.rows import Row
from millstream.processors.state.manager import StoreSpec
from millstream.processors.tasks.definition import AnyTask
from millstream.processors.tasks.delays import DelayPartition
from millstream.processors.tasks.envelope import now_ms
from millstream.processors.tasks.partition import TaskPartition
from millstream.topics import Topic

if TYPE_CHECKING:
    from millstream.processors.tasks.runtime import TaskRuntime

#: How long a task's completion entry is kept (a record of it sent again within
#: this time is not run again).
COMPLETION_TTL_MS = 24 * 3600 * 1000
#: How often a partition's expired completion entries are deleted, and at most how
#: many in one go.
EXPIRE_EVERY = 300.0
EXPIRE_AT_MOST = 50_000


def _runtime(step: TaskStep | DelayStep) -> TaskRuntime:
    if step.runtime is None:
        raise ConfigurationError("tasks", "task topics are processed by a worker only")
    return step.runtime


class TaskStep(StatefulStep):
    """Reads a task topic. Its store keeps a completion entry per task id."""

    def __init__(self, topic: Topic, store_name: str) -> None:
        super().__init__()
        self.topic = topic
        self.source = topic.name
        self.store_name = store_name
        self.name = f"tasks({topic.name})"
        self.tasks: dict[str, AnyTask] = {}
        self.runtime: TaskRuntime | None = None

    def store_specs(self) -> list[StoreSpec]:
        return [StoreSpec(self.store_name, self.source, "rocksdb")]

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        assert isinstance(part, TaskPartition)
        _runtime(self).accept(part, rows)

    def punctuate(self, part: AssignedPartition, now: float) -> None:
        """Delete completion entries older than :data:`COMPLETION_TTL_MS`, now and then."""
        last = part.views.get(self.name, 0.0)
        if now - last < EXPIRE_EVERY:
            return
        part.views[self.name] = now
        store = part.store(self.store_name)
        oldest = now_ms() - COMPLETION_TTL_MS
        expired: list[Any] = []
        for task_id, entry in store.items():
            if entry.get("t", 0) < oldest:
                expired.append(task_id)
                if len(expired) >= EXPIRE_AT_MOST:
                    break
        for task_id in expired:
            store.delete(task_id)

    def open_partition(self, part: AssignedPartition) -> None:
        part.views[self.name] = time.monotonic()


class DelayStep(Step):
    """Reads one delay tier, whose records all wait ``wait`` seconds."""

    def __init__(self, topic: Topic, wait: float) -> None:
        super().__init__()
        self.topic = topic
        self.wait = wait
        self.name = f"delay({topic.name})"
        self.runtime: TaskRuntime | None = None

    def process(self, rows: list[Row], part: AssignedPartition) -> None:
        assert isinstance(part, DelayPartition)
        _runtime(self).delay(part, rows)
