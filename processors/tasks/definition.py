"""What ``@app.task`` makes of a function: a :class:`Task` that runs locally when
called and publishes a task record when sent.

A task's options are validated once, when it is declared; its arguments are
checked against the function's signature and encoded when it is sent, so a call
that cannot work fails in the sender, not on a worker.
"""

from __future__ import annotations

import inspect
import random
import re
import typing
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar

from pydantic import BaseModel

from millstream.errors import ConfigurationError, TaskArgumentsError
from millstream.processors.tasks.envelope import TaskEnvelope

if TYPE_CHECKING:
    from millstream.processors.tasks.client import TaskClient, TaskHandle

P = ParamSpec("P")
R = TypeVar("R")

#: Partitions of a task topic millstream creates, unless ``partitions=`` says otherwise.
DEFAULT_PARTITIONS = 8
#: How a task topic is consumed: ``ordered`` by the app's consumer group, ``queue`` by
#: its share group (docs/tasks.md).
TaskMode = Literal["ordered", "queue"]
TASK_MODES = ("ordered", "queue")

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,180}$")


def _seconds(value: float | timedelta, setting: str, *, zero: bool = False) -> float:
    result = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if result < 0 or (result == 0 and not zero):
        raise ConfigurationError(setting, f"must be a positive duration, got {value!r}")
    return result


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed attempt is tried again, and after how long."""

    retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 600.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def retries_on(self, error: BaseException, attempts: int) -> bool:
        """Whether the attempt that raised ``error``, the ``attempts``-th, is retried."""
        return attempts <= self.retries and isinstance(error, self.retry_on)

    def delay(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: exponential backoff, capped, plus a
        jitter of up to 10% that only ever adds."""
        base = min(self.backoff * 2.0 ** (attempts - 1), self.max_backoff)
        return float(base + random.uniform(0, base * 0.1))


class Task(Generic[P, R]):
    """A function registered with ``@app.task``.

    Call it to run it here and now (for tests); :meth:`send` publishes it to run on a
    worker; :meth:`options` sets a key, a delay or the task id for one send.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        client: Callable[[], TaskClient],
        *,
        name: str,
        topic: str,
        partitions: int,
        policy: RetryPolicy,
        timeout: float | None,
        concurrency: int,
        mode: TaskMode = "ordered",
    ) -> None:
        self.fn = fn
        self.mode = mode
        self.name = name
        self.topic = topic
        self.partitions = partitions
        self.policy = policy
        self.timeout = timeout
        self.concurrency = concurrency
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self._client = client
        self._models = _model_parameters(fn)
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", name)
        self.__wrapped__ = fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def send(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Publish this task with these arguments; returns at once with a handle whose
        ``id`` names the task and whose ``result()`` waits for its return value.

        Raises:
            TaskArgumentsError: the arguments do not fit the signature or are not JSON.
        """
        return self.options().send(*args, **kwargs)

    async def send_async(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Publish this task and return once Kafka has acknowledged it."""
        return await self.options().send_async(*args, **kwargs)

    def options(
        self,
        *,
        key: str | bytes | None = None,
        delay: float | timedelta | None = None,
        eta: datetime | None = None,
        task_id: str | None = None,
    ) -> TaskCall[P, R]:
        """Options for one send: ``key`` (tasks of a key run in order; default the task
        id), ``delay`` or ``eta`` (not run before), ``task_id`` (a task id already
        finished is not run again)."""
        due = 0.0
        if delay is not None:
            due = _seconds(delay, "delay", zero=True)
        if eta is not None:
            if eta.tzinfo is None:
                raise ConfigurationError("eta", "must be timezone-aware (e.g. datetime.now(UTC))")
            due = max(0.0, eta.timestamp() - datetime.now(eta.tzinfo).timestamp())
        return TaskCall(self, key, due, task_id)

    def bind(self, args: list[Any], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        """The arguments bound to the signature, pydantic models built from their JSON.

        Raises:
            TaskArgumentsError: they do not fit the signature or a model.
        """
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TaskArgumentsError(f"task {self.name!r}: {exc}") from exc
        for param, model in self._models.items():
            value = bound.arguments.get(param)
            if value is not None and not isinstance(value, model):
                try:
                    bound.arguments[param] = model.model_validate(value)
                except ValueError as exc:
                    raise TaskArgumentsError(f"task {self.name!r}, {param}: {exc}") from exc
        return bound

    def envelope(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], task_id: str | None
    ) -> TaskEnvelope:
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TaskArgumentsError(f"task {self.name!r}: {exc}") from exc
        return TaskEnvelope(task_id or uuid.uuid4().hex, self.name, list(args), dict(kwargs))

    def __repr__(self) -> str:
        return f"<task {self.name} on {self.topic}>"


class TaskCall(Generic[P, R]):
    """One send of a task with options: what :meth:`Task.options` returns."""

    def __init__(
        self, task: Task[P, R], key: str | bytes | None, delay: float, task_id: str | None
    ) -> None:
        self.task = task
        self.key = key
        self.delay = delay
        self.task_id = task_id

    def send(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Publish the task; returns at once (see :meth:`Task.send`)."""
        task = self.task
        envelope = task.envelope(args, kwargs, self.task_id)
        return task._client().publish(  # noqa: SLF001 - the task's own client
            task.topic, envelope, self.key, self.delay, task.partitions, queue=task.mode == "queue"
        )

    async def send_async(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Publish the task and return once Kafka has acknowledged it."""
        handle = self.send(*args, **kwargs)
        await handle.sent_async()
        return handle


def call_by_name(
    client: TaskClient,
    name: str,
    topic: str,
    args: list[Any] | tuple[Any, ...] | None,
    kwargs: dict[str, Any] | None,
    key: str | bytes | None,
    delay: float | timedelta | None,
    task_id: str | None,
) -> TaskHandle[Any]:
    """Publish the task ``name`` to ``topic`` without knowing its function."""
    due = 0.0 if delay is None else _seconds(delay, "delay", zero=True)
    envelope = TaskEnvelope(task_id or uuid.uuid4().hex, name, list(args or ()), dict(kwargs or {}))
    return client.publish(topic, envelope, key, due, DEFAULT_PARTITIONS)


def _model_parameters(fn: Callable[..., Any]) -> dict[str, type[BaseModel]]:
    """The parameters annotated with a pydantic model, which arrive as JSON objects."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return {}
    return {
        name: hint
        for name, hint in hints.items()
        if name != "return" and isinstance(hint, type) and issubclass(hint, BaseModel)
    }


def validate_task(
    name: str,
    *,
    retries: int,
    backoff: float | timedelta,
    max_backoff: float | timedelta,
    retry_on: tuple[type[BaseException], ...],
    timeout: float | timedelta | None,
    concurrency: int,
    partitions: int | None,
    mode: str = "ordered",
) -> tuple[RetryPolicy, float | None]:
    """The retry policy and timeout of a task declaration.

    Raises:
        ConfigurationError: an option is invalid; the message names it.
    """
    if not _NAME.match(name):
        raise ConfigurationError("name", f"task name {name!r} must be 1-180 of [A-Za-z0-9._-]")
    if retries < 0:
        raise ConfigurationError("retries", "must be 0 or more")
    if concurrency < 1:
        raise ConfigurationError("concurrency", "must be at least 1")
    if mode not in TASK_MODES:
        raise ConfigurationError("mode", f"must be 'ordered' or 'queue', not {mode!r}")
    if partitions is not None and partitions < 1:
        raise ConfigurationError("partitions", "must be at least 1")
    if not (
        isinstance(retry_on, tuple)
        and all(isinstance(t, type) and issubclass(t, BaseException) for t in retry_on)
    ):
        raise ConfigurationError("retry_on", "must be a tuple of exception classes")
    policy = RetryPolicy(
        retries,
        _seconds(backoff, "backoff"),
        _seconds(max_backoff, "max_backoff"),
        retry_on,
    )
    return policy, None if timeout is None else _seconds(timeout, "timeout")


AnyTask = Task[Any, Any]
AsyncFn = Callable[..., Awaitable[Any]]
