"""Where task functions run: sync ones on a pool of threads, async ones on one event
loop in a thread of its own. Outcomes come back through a queue that the worker's
thread drains; nothing here touches Kafka.

An async task past its timeout is cancelled. A sync one cannot be stopped: the
worker reports its attempt failed when the timeout passes, and its thread (and
the task's slot) stays busy until the function returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from millstream.errors import TaskTimeout

#: Threads for sync tasks, at most: beyond that, tasks wait for a thread.
MAX_THREADS = 256


@dataclass(frozen=True)
class TaskInfo:
    """What a running task knows about itself: ``millstream.current_task()``."""

    id: str
    name: str
    #: Attempts made before this one (0 on the first).
    attempt: int
    key: bytes | None


_current: contextvars.ContextVar[TaskInfo | None] = contextvars.ContextVar(
    "millstream_task", default=None
)


def current_task() -> TaskInfo:
    """The task running in this thread or coroutine.

    Raises:
        LookupError: called outside a task run by a worker.
    """
    info = _current.get()
    if info is None:
        raise LookupError("current_task() is only known inside a task run by a worker")
    return info


@dataclass
class Outcome:
    """How one attempt ended: ``error`` is None when it returned ``result``."""

    token: object
    result: Any = None
    error: BaseException | None = None


class TaskRunner:
    """Runs task functions off the worker's thread and queues their outcomes."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="millstream-task")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        #: Called (from any thread) when an outcome is queued, to wake the worker.
        self.on_outcome: Callable[[], None] = lambda: None

    def run(
        self,
        token: object,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        info: TaskInfo,
        *,
        is_async: bool,
        timeout: float | None,
    ) -> None:
        """Start ``fn(*args, **kwargs)``; its :class:`Outcome` carries ``token``."""
        if is_async:
            coroutine = self._guarded(token, fn, args, kwargs, info, timeout)
            asyncio.run_coroutine_threadsafe(coroutine, self._event_loop())
        else:
            self._pool.submit(self._call, token, fn, args, kwargs, info)

    def outcomes(self) -> list[Outcome]:
        """The outcomes queued since the last call."""
        found: list[Outcome] = []
        get = self._outcomes.get_nowait
        try:
            while True:
                found.append(get())
        except queue.Empty:
            return found

    def close(self) -> None:
        """Stop taking tasks; running threads are not waited for."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            self._loop = None

    def _put(self, outcome: Outcome) -> None:
        self._outcomes.put(outcome)
        self.on_outcome()

    def _call(
        self,
        token: object,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        info: TaskInfo,
    ) -> None:
        reset = _current.set(info)
        try:
            outcome = Outcome(token, fn(*args, **kwargs))
        except BaseException as exc:
            outcome = Outcome(token, error=exc)
        finally:
            _current.reset(reset)
        self._put(outcome)

    async def _guarded(
        self,
        token: object,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        info: TaskInfo,
        timeout: float | None,
    ) -> None:
        _current.set(info)
        try:
            result = await asyncio.wait_for(fn(*args, **kwargs), timeout)
            outcome = Outcome(token, result)
        except TimeoutError:
            outcome = Outcome(token, error=TaskTimeout(f"task ran past its timeout of {timeout}s"))
        except BaseException as exc:
            outcome = Outcome(token, error=exc)
        self._put(outcome)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="millstream-task-loop", daemon=True
            )
            thread.start()
            self._loop, self._loop_thread = loop, thread
        return self._loop
