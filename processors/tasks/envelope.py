"""A task as it travels in Kafka: the record's value, its headers, and the reply.

Everything a worker needs to run a task is in its record, so any client that
writes this format can publish tasks (docs/tasks.md draws it). Values are JSON
(orjson); pydantic models among the arguments are written as their JSON form.
"""

from __future__ import annotations

import time
import traceback as tb
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from millstream.errors import SerializationError, TaskArgumentsError
from millstream.processors.dead_letters import error_type_name

HEADER_ATTEMPTS = "millstream.task.attempts"
HEADER_DUE = "millstream.task.due"
HEADER_FIRST_FAILURE = "millstream.task.first_failure"
HEADER_REPLAY = "millstream.task.replay"
HEADER_TARGET = "millstream.task.topic"
HEADER_ID = "millstream.task.id"
HEADER_NAME = "millstream.task.name"
HEADER_TRACEBACK = "millstream.error.traceback"

#: Headers a worker sets itself; a forwarded or retried record drops the old ones.
TASK_HEADERS = frozenset(
    {HEADER_ATTEMPTS, HEADER_DUE, HEADER_FIRST_FAILURE, HEADER_REPLAY, HEADER_TARGET}
)

_MAX_TRACEBACK = 16_000

Headers = list[tuple[str, str | bytes]]


def now_ms() -> int:
    return int(time.time() * 1000)


def _default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def to_json(obj: Any) -> bytes:
    """JSON bytes of ``obj`` (pydantic models as their JSON form).

    Raises:
        TypeError: ``obj`` holds something JSON cannot represent.
    """
    return orjson.dumps(obj, default=_default, option=orjson.OPT_NON_STR_KEYS)


@dataclass
class TaskEnvelope:
    """The value of a task record."""

    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    reply: tuple[str, int] | None = None
    sent: int = 0

    def encode(self) -> bytes:
        """The record value.

        Raises:
            TaskArgumentsError: an argument cannot be written as JSON.
        """
        body = {
            "id": self.id,
            "task": self.task,
            "args": self.args,
            "kwargs": self.kwargs,
            "reply": list(self.reply) if self.reply else None,
            "sent": self.sent or now_ms(),
        }
        try:
            return to_json(body)
        except TypeError as exc:
            raise TaskArgumentsError(
                f"the arguments of task {self.task!r} cannot be sent as JSON: {exc}"
            ) from exc

    @classmethod
    def decode(cls, value: bytes | None) -> TaskEnvelope:
        """The envelope in a record value.

        Raises:
            SerializationError: the value is not a task record.
        """
        try:
            body = orjson.loads(value or b"")
        except orjson.JSONDecodeError as exc:
            raise SerializationError(f"a task record must be JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise SerializationError("a task record must be a JSON object")
        try:
            task_id, name = body["id"], body["task"]
            args, kwargs = body.get("args") or [], body.get("kwargs") or {}
            reply = body.get("reply")
            if not (isinstance(task_id, str) and isinstance(name, str)):
                raise TypeError("'id' and 'task' must be strings")
            if not (isinstance(args, list) and isinstance(kwargs, dict)):
                raise TypeError("'args' must be a list and 'kwargs' an object")
            if reply is not None:
                reply = (str(reply[0]), int(reply[1]))
            return cls(task_id, name, args, kwargs, reply, int(body.get("sent") or 0))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SerializationError(f"not a task record: {exc}") from exc


@dataclass(frozen=True)
class Delivery:
    """What the headers of a task record say about this delivery of it."""

    attempts: int = 0
    due: int = 0
    first_failure: int = 0
    replay: int = 0
    target: str | None = None

    @classmethod
    def of(cls, headers: Iterable[tuple[str, str | bytes]] | None) -> Delivery:
        found: dict[str, str] = {}
        for name, value in headers or ():
            if name in TASK_HEADERS:
                found[name] = value.decode() if isinstance(value, bytes) else value
        try:
            return cls(
                int(found.get(HEADER_ATTEMPTS, 0)),
                int(found.get(HEADER_DUE, 0)),
                int(found.get(HEADER_FIRST_FAILURE, 0)),
                int(found.get(HEADER_REPLAY, 0)),
                found.get(HEADER_TARGET),
            )
        except ValueError as exc:
            raise SerializationError(f"a task header is not a number: {exc}") from exc

    def headers(self, others: Iterable[tuple[str, str | bytes]] | None = None) -> Headers:
        """``others`` without task headers, followed by this delivery's."""
        out: Headers = [(k, v) for k, v in others or () if k not in TASK_HEADERS]
        if self.attempts:
            out.append((HEADER_ATTEMPTS, str(self.attempts)))
        if self.due:
            out.append((HEADER_DUE, str(self.due)))
        if self.first_failure:
            out.append((HEADER_FIRST_FAILURE, str(self.first_failure)))
        if self.replay:
            out.append((HEADER_REPLAY, str(self.replay)))
        if self.target:
            out.append((HEADER_TARGET, self.target))
        return out


def format_traceback(error: BaseException) -> str:
    text = "".join(tb.format_exception(type(error), error, error.__traceback__))
    return text[-_MAX_TRACEBACK:]


def success_reply(task_id: str, name: str, result: Any) -> bytes:
    """The reply of a task that returned ``result``.

    Raises:
        TypeError: the result cannot be written as JSON.
    """
    return to_json({"id": task_id, "task": name, "status": "succeeded", "result": result})


def failure_reply(task_id: str, name: str, error: BaseException) -> bytes:
    failure = {
        "type": error_type_name(error),
        "message": str(error),
        "traceback": format_traceback(error),
    }
    return to_json({"id": task_id, "task": name, "status": "failed", "error": failure})
