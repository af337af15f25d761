"""The millstream exception tree.

Every error millstream raises derives from :class:`MillstreamError`; errors from
confluent-kafka are mapped onto this tree and chained (``raise ... from exc``)
so the original stays visible in tracebacks. Every class lives in this module,
so the name of an error's class (``millstream.errors.LateRecord``, say), which the
dead-letter header ``millstream.error.type`` carries, does not change when the
code that raises it moves::

    MillstreamError
    ├── ConfigurationError          a setting is missing or invalid (names it)
    ├── SerializationError          a key or value cannot be (de)serialized
    ├── LocalClusterError           the local development cluster cannot start
    ├── KafkaError                  anything the Kafka client reported
    │   ├── BrokerUnreachableError  no broker answered within the timeout
    │   ├── AuthenticationError     SASL authentication failed (wrong user or password)
    │   ├── TlsError                the TLS handshake failed (certificate verification)
    │   ├── AuthorizationError      an ACL denies the operation (names the topic or group)
    │   ├── TopicNotFoundError      a topic the app refers to does not exist
    │   ├── TopicAlreadyExistsError create of an existing topic
    │   ├── GroupNotFoundError      a consumer group has no members and no offsets
    │   ├── GroupNotEmptyError      a group's offsets cannot change while members are alive
    │   ├── DeliveryError           a produced record could not be delivered
    │   └── TransactionError        a transaction could not commit (abortable or fatal)
    │       └── ProducerFenced      a worker's producer was fenced or is stuck: it rejoins
    ├── ProcessingError             a pipeline step failed (wraps user errors)
    ├── IllegalTransition           a partition's lifecycle was broken (a bug in millstream)
    ├── LateRecord                  the reason a late record went to the late topic
    ├── SinkBackpressure            a sink's destination cannot take writes now (retry_after)
    ├── SinkRefused                 a sink's destination refused a record for good (to the DLQ)
    └── TaskError                   a task could not be run, or did not succeed
        ├── TaskFailed              the task raised (carries the remote type, message, traceback)
        ├── TaskTimeout             no result in time, or an attempt ran past its timeout
        ├── TaskNotFoundError       a task record names a task the app does not have
        ├── TaskArgumentsError      arguments that do not bind to the task's signature
        └── TaskLost                a queue task's deliveries kept ending without an outcome
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "BrokerUnreachableError",
    "ConfigurationError",
    "DeliveryError",
    "GroupNotEmptyError",
    "GroupNotFoundError",
    "IllegalTransition",
    "KafkaError",
    "LateRecord",
    "LocalClusterError",
    "MillstreamError",
    "ProcessingError",
    "ProducerFenced",
    "SerializationError",
    "SinkBackpressure",
    "SinkRefused",
    "TaskArgumentsError",
    "TaskError",
    "TaskFailed",
    "TaskLost",
    "TaskNotFoundError",
    "TaskTimeout",
    "TlsError",
    "TopicAlreadyExistsError",
    "TopicNotFoundError",
    "TransactionError",
]


class MillstreamError(Exception):
    """Root of every error millstream raises."""


class ConfigurationError(MillstreamError):
    """A setting is missing or invalid. The message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"invalid setting {setting!r}: {problem}")


class SerializationError(MillstreamError):
    """A key or value could not be serialized or deserialized."""


class LocalClusterError(MillstreamError):
    """The local development Kafka cluster could not be assembled or started."""


class KafkaError(MillstreamError):
    """An error reported by the Kafka client or broker."""

    def __init__(self, message: str, *, code: str | None = None, retriable: bool = False) -> None:
        self.code = code
        self.retriable = retriable
        super().__init__(message)


class BrokerUnreachableError(KafkaError):
    """No broker of the bootstrap list answered within the timeout."""


class AuthenticationError(KafkaError):
    """The broker rejected the client's SASL credentials (user, password, mechanism).

    Never retried: librdkafka would try again for ever with the same credentials.
    """


class TlsError(KafkaError):
    """The TLS handshake with a broker failed: its certificate did not verify against
    the trusted CA (``MILLSTREAM_SSL_CA_LOCATION``), its name did not match, or the
    broker refused the client's certificate. Never retried."""


class AuthorizationError(KafkaError):
    """The broker's ACLs deny the operation."""


class TopicNotFoundError(KafkaError):
    """A topic the application refers to does not exist."""


class TopicAlreadyExistsError(KafkaError):
    """A topic to be created exists already."""


class GroupNotFoundError(KafkaError):
    """A consumer group the command names has no members and no committed offsets."""


class GroupNotEmptyError(KafkaError):
    """A group's committed offsets cannot be changed while it has live members."""


class DeliveryError(KafkaError):
    """A produced record could not be delivered to its topic."""


class TransactionError(KafkaError):
    """A Kafka transaction could not commit.

    ``fatal`` means the producer was fenced (another instance with the same
    transactional id, or the transaction timed out) and must be replaced;
    otherwise the transaction is aborted and the batch processed again.
    """

    def __init__(self, message: str, *, code: str | None = None, fatal: bool = False) -> None:
        super().__init__(message, code=code)
        self.fatal = fatal


class ProcessingError(MillstreamError):
    """A step of a pipeline raised; the user's exception is chained."""


class ProducerFenced(TransactionError):
    """A worker's transactional producer cannot go on: it was fenced, or it is stuck.

    Fenced means another producer with the same transactional id took over, or the
    broker aborted the transaction (it ran past ``transaction_timeout``); stuck
    means a transactional call did not return within its bound. Either way the
    open transaction is lost, so ``fatal`` is always true: the worker drops its
    uncommitted state, leaves the group and rejoins with a new producer, and the
    records since the last commit are processed again. It is a
    :class:`TransactionError` because it is the fatal case of one, already decided:
    code that handles transaction errors sees it, with the original chained.
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, fatal=True)


class IllegalTransition(MillstreamError):
    """A partition was asked to move to a state its lifecycle does not allow.

    The lifecycle is drawn in ``millstream.processors.assigned``; this error means a
    bug in millstream, not in the application, and ends the worker.
    """


class LateRecord(MillstreamError):
    """The reason a late record was routed to the late topic (``{app_id}-late``).

    Never raised: it is the error a late record carries to the late topic, in the
    same headers as a dead letter (``millstream.error.type`` is
    ``millstream.errors.LateRecord``). A record is late when the stream time of its
    partition has passed the end of its window plus the grace period.
    """


class SinkBackpressure(MillstreamError):
    """A sink's destination cannot take writes for now (down, overloaded, full).

    Raised by :meth:`Sink.write` or :meth:`Sink.flush`; ``retry_after`` is how many
    seconds the sink suggests waiting. Nothing written since the last checkpoint is
    lost: it is written again once the destination is back.
    """

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SinkRefused(MillstreamError):
    """A sink's destination refused one record for good (an HTTP 4xx, a value that does
    not fit): the reason a record carries to the dead-letter topic. The rest of its
    batch is written."""


class TaskError(MillstreamError):
    """A task could not be run, or did not succeed."""


class TaskFailed(TaskError):
    """The task raised on the worker (after its last attempt).

    ``type`` is the remote exception's class as ``module.QualName``, ``message`` its
    message and ``traceback`` the formatted remote traceback.
    """

    def __init__(
        self, task_id: str, task: str, type: str, message: str, traceback: str = ""
    ) -> None:
        self.task_id = task_id
        self.task = task
        self.type = type
        self.message = message
        self.traceback = traceback
        super().__init__(f"task {task}[{task_id}] failed: {type}: {message}")


class TaskTimeout(TaskError):
    """No result came within the time waited for it, or an attempt ran past the task's
    ``timeout`` (the reason a timed-out attempt failed)."""


class TaskNotFoundError(TaskError):
    """A task record names a task this app does not define (it goes to the DLQ)."""


class TaskArgumentsError(TaskError):
    """Arguments that do not bind to the task function's signature, or cannot be
    serialized (fails at ``send``; on a worker, the record goes to the DLQ)."""


class TaskLost(TaskError):
    """A queue-mode task was delivered again and again without an outcome: each time
    its worker died, or its record lock ran out while it ran. The reason it carries to
    the dead-letter topic after ``retries + 1`` such deliveries (docs/tasks.md)."""
