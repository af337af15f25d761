"""The millstream exception tree.

Every error millstream raises derives from :class:`MillstreamError`; errors from
confluent-kafka are mapped onto this tree and chained (``raise ... from exc``)
so the original stays visible in tracebacks::

    MillstreamError
    ├── ConfigurationError          a setting is missing or invalid (names it)
    ├── SerializationError          a key or value cannot be (de)serialized
    ├── LocalClusterError           the local development cluster cannot start
    ├── KafkaError                  anything the Kafka client reported
    │   ├── BrokerUnreachableError  no broker answered within the timeout
    │   ├── AuthenticationError     SASL/SSL authentication failed
    │   ├── AuthorizationError      an ACL denies the operation
    │   ├── TopicNotFoundError      a topic the app refers to does not exist
    │   ├── TopicAlreadyExistsError create of an existing topic
    │   ├── DeliveryError           a produced record could not be delivered
    │   └── TransactionError        a transaction could not commit (abortable or fatal)
    └── ProcessingError             a pipeline step failed (wraps user errors)
"""

from __future__ import annotations


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
    """The broker rejected the client's credentials."""


class AuthorizationError(KafkaError):
    """The broker's ACLs deny the operation."""


class TopicNotFoundError(KafkaError):
    """A topic the application refers to does not exist."""


class TopicAlreadyExistsError(KafkaError):
    """A topic to be created exists already."""


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
