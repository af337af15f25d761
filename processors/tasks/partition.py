"""One partition of a task topic: tasks waiting per key, tasks running, and which
offsets are done.

Tasks of one key run one at a time, in offset order; tasks of different keys run
side by side, up to each task's ``concurrency`` in this partition. The partition
commits its lowest unfinished offset, with the finished offsets above it in the
commit's metadata (:class:`~millstream.processors.completions.Completions`), so it
never rewinds: after an aborted transaction it sends again what it had sent since
the last commit (:attr:`TaskPartition.unsaved`) instead of running tasks again.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from millstream.kafka import ConsumedRecord
from millstream.processors.assigned import AssignedPartition
from millstream.processors.completions import Completions
from millstream.processors.state.store import StorePartition
from millstream.processors.tasks.envelope import Delivery, TaskEnvelope

#: Tasks a partition holds in memory (waiting or running) before its input pauses.
MAX_BUFFERED = 2000


@dataclass
class Pending:
    """A task record taken from the topic, waiting for its key and a slot."""

    offset: int
    key: bytes | None
    envelope: TaskEnvelope
    delivery: Delivery
    message: ConsumedRecord
    #: Epoch seconds before which it must not start (0: at once).
    due: float = 0.0
    #: Monotonic seconds when it was taken from the topic (for the wait-time histogram).
    queued_at: float = 0.0


@dataclass
class Running:
    """A task attempt under way, in ``part``."""

    pending: Pending
    part: TaskPartition
    started: float
    deadline: float | None
    #: The attempt was already reported failed (it ran past its timeout); the slot
    #: stays busy until the function returns.
    abandoned: bool = False


#: A send to redo after an aborted transaction: (topic, key, value, headers, partition).
Send = tuple[str, bytes | None, bytes | None, list[tuple[str, str | bytes]] | None, int]


@dataclass
class _KeyQueue:
    waiting: deque[Pending] = field(default_factory=deque)
    running: bool = False


class TaskPartition(AssignedPartition):
    """A task topic partition: its dispatch state and its completions."""

    __slots__ = (
        "_commit_point",
        "_keys",
        "_offered_point",
        "_ready",
        "_timers",
        "buffered",
        "completions",
        "consumed_to",
        "inflight_ids",
        "running",
        "running_by_task",
        "unsaved",
        "unsaved_writes",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        stores: dict[str, StorePartition] | None = None,
        *,
        purgeable: bool = False,
    ) -> None:
        super().__init__(topic, partition, stores, purgeable=purgeable)
        self.completions: Completions | None = None
        #: The offset after the last record taken from the topic, once completions start.
        self.consumed_to: int | None = None
        self._keys: dict[bytes | None, _KeyQueue] = {}
        #: Keys whose head task may start once its task has a free slot, by task name.
        self._ready: dict[str, deque[bytes | None]] = {}
        self._timers: list[tuple[float, int, bytes | None]] = []
        self.running: dict[int, Running] = {}
        #: Slots taken, by task name (a timed-out sync attempt keeps its slot).
        self.running_by_task: dict[str, int] = {}
        self.inflight_ids: dict[str, tuple[int, int]] = {}
        #: Tasks taken from the topic and not finished (waiting or running).
        self.buffered = 0
        self.unsaved: list[Send] = []
        self.unsaved_writes: list[tuple[str, Any, Any]] = []
        self._commit_point: tuple[int, str] | None = None
        self._offered_point: tuple[int, str] | None = None

    # -- input ---------------------------------------------------------------------

    def processed(self, next_offset: int) -> None:
        # Stores here hold completions by task id, not a position in the input: the
        # position is the completions' committable offset.
        self._next_offset = next_offset

    def resume_offset(self) -> int | None:
        return None

    def start_completions(self, committed: int, metadata: str | None) -> None:
        self.completions = Completions.from_commit(committed, metadata)
        self._commit_point = (committed, metadata or "")
        self.consumed_to = committed

    def consumed(self, offset: int) -> None:
        """The record at ``offset`` was taken from the topic. The offsets the consumer
        skipped before it (transaction markers, aborted or compacted records) hold no
        task: they are done, or the committed offset could never pass them."""
        assert self.completions is not None
        low = self.consumed_to
        if low is not None and offset > low:
            for skipped in range(low, offset):
                self.completions.done(skipped)
        self.consumed_to = offset + 1 if low is None else max(low, offset + 1)

    def add(self, pending: Pending) -> None:
        """Queue a task behind the others of its key."""
        if self.completions is None:
            self.completions = Completions(pending.offset)
        queue = self._keys.get(pending.key)
        if queue is None:
            queue = self._keys[pending.key] = _KeyQueue()
        queue.waiting.append(pending)
        self.buffered += 1
        self.inflight_ids[pending.envelope.id] = (
            pending.delivery.replay,
            pending.delivery.attempts,
        )
        if len(queue.waiting) == 1 and not queue.running:
            self._make_ready(pending.key, pending)

    def done(self, offset: int) -> None:
        """The record at ``offset`` needs nothing more (finished, skipped or dead-lettered)."""
        assert self.completions is not None
        self.completions.done(offset)

    @property
    def full(self) -> bool:
        """Whether input should pause: too much in memory, or metadata at its limit."""
        return self.buffered >= MAX_BUFFERED or (
            self.completions is not None and self.completions.full
        )

    # -- dispatch --------------------------------------------------------------------

    def runnable(self, now: float, slots: Callable[[str], int]) -> list[Pending]:
        """Tasks that may start now, taken off their queues, each with a slot taken: the
        heads of keys not running and due, while their task has a free slot
        (``slots(name)`` is its concurrency). Costs what it starts, not what waits."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, key = heapq.heappop(timers)
            queue = self._keys.get(key)
            if queue is not None and queue.waiting and not queue.running:
                self._make_ready(key, queue.waiting[0])
        started: list[Pending] = []
        for name, ready in self._ready.items():
            free = slots(name) - self.running_by_task.get(name, 0)
            while free > 0 and ready:
                key = ready.popleft()
                queue = self._keys.get(key)
                if queue is None or queue.running or not queue.waiting:
                    continue
                head = queue.waiting[0]
                if head.due > now:
                    heapq.heappush(timers, (head.due, head.offset, key))
                    continue
                queue.waiting.popleft()
                queue.running = True
                started.append(head)
                free -= 1
                self.running_by_task[name] = self.running_by_task.get(name, 0) + 1
        return started

    def free_slot(self, name: str) -> None:
        """An attempt of task ``name`` returned (or never started): its slot is free."""
        self.running_by_task[name] -= 1

    def next_timer(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def finished(self, pending: Pending) -> None:
        """The task's attempt ended: its key may run its next task."""
        queue = self._keys.get(pending.key)
        self.buffered -= 1
        self.inflight_ids.pop(pending.envelope.id, None)
        if queue is None:
            return
        queue.running = False
        if queue.waiting:
            self._make_ready(pending.key, queue.waiting[0])
        else:
            del self._keys[pending.key]

    def _make_ready(self, key: bytes | None, head: Pending) -> None:
        ready = self._ready.get(head.envelope.task)
        if ready is None:
            ready = self._ready[head.envelope.task] = deque()
        ready.append(key)

    def drop_waiting(self) -> int:
        """Forget the tasks not started (the partition is being given up); returns how many."""
        dropped = 0
        for queue in self._keys.values():
            dropped += len(queue.waiting)
            for pending in queue.waiting:
                self.inflight_ids.pop(pending.envelope.id, None)
            queue.waiting.clear()
        self._ready.clear()
        self._timers.clear()
        self.buffered -= dropped
        return dropped

    # -- checkpoints -----------------------------------------------------------------

    def commit_point(self) -> tuple[int, str] | None:
        """(offset, metadata) to commit now, or None when nothing changed."""
        if self.completions is None:
            return None
        point = (self.completions.committable_offset, self.completions.metadata())
        return None if point == self._commit_point else point

    def committable_offset(self) -> int | None:
        point = self.commit_point()
        return None if point is None else point[0]

    def prepare_commit(self, send: Any) -> list[StorePartition]:
        self._offered_point = self.commit_point()
        return super().prepare_commit(send)

    def post_commit(self, *, offsets_committed: bool) -> None:
        super().post_commit(offsets_committed=offsets_committed)
        if offsets_committed and self._offered_point is not None:
            self._commit_point = self._offered_point
            self.unsaved.clear()
            self.unsaved_writes.clear()
        self._offered_point = None

    rewinds = False

    def commit_metadata(self) -> str:
        return self._offered_point[1] if self._offered_point is not None else ""

    def discard(self) -> None:
        """An aborted transaction: the stores go back to their last commit; what was sent
        since is sent again by the runtime (:attr:`unsaved`), nothing runs again."""
        for store in self.stores.values():
            store.discard()
        self._offered_point = None
