"""Mapping of confluent-kafka errors onto the millstream error tree."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from confluent_kafka import KafkaError as _CKError
from confluent_kafka import KafkaException

from millstream.errors import (
    AuthenticationError,
    AuthorizationError,
    BrokerUnreachableError,
    KafkaError,
    TlsError,
    TopicAlreadyExistsError,
    TopicNotFoundError,
)

_UNREACHABLE = {
    _CKError._TRANSPORT,
    _CKError._ALL_BROKERS_DOWN,
    _CKError._TIMED_OUT,
    _CKError._RESOLVE,
}
_AUTHENTICATION = {_CKError._AUTHENTICATION, _CKError.SASL_AUTHENTICATION_FAILED}
_TLS = {_CKError._SSL}
_AUTHORIZATION = {
    _CKError.TOPIC_AUTHORIZATION_FAILED,
    _CKError.GROUP_AUTHORIZATION_FAILED,
    _CKError.CLUSTER_AUTHORIZATION_FAILED,
    _CKError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}
#: Errors that go away by themselves: leadership moving, a topic still being created.
_TRANSIENT = {
    _CKError.NOT_LEADER_FOR_PARTITION,
    _CKError.LEADER_NOT_AVAILABLE,
    _CKError.REQUEST_TIMED_OUT,
    _CKError.NOT_COORDINATOR,
    _CKError.COORDINATOR_LOAD_IN_PROGRESS,
    _CKError.COORDINATOR_NOT_AVAILABLE,
    _CKError.UNKNOWN_TOPIC_OR_PART,
    _CKError._UNKNOWN_PARTITION,
    _CKError._TIMED_OUT,
    _CKError._TRANSPORT,
    # A request in flight to a broker that left the cluster metadata (stopped, or
    # restarting): the client dropped its handle; asked again, the new leader answers.
    _CKError._DESTROY_BROKER,
}
_NOT_FOUND = {_CKError.UNKNOWN_TOPIC_OR_PART, _CKError._UNKNOWN_TOPIC, _CKError._UNKNOWN_PARTITION}


def from_client_error(error: _CKError | None, context: str) -> KafkaError:
    """A millstream error for a confluent-kafka ``KafkaError``; ``context`` says what was tried."""
    if error is None:
        return KafkaError(f"{context}: unknown Kafka error")
    code = error.code()
    detail = f"{context}: {error.str()} ({error.name()})"
    if code in _AUTHORIZATION:
        detail = f"{context}: not allowed by the cluster's ACLs ({error.name()}: {error.str()})"
    kind: type[KafkaError] = KafkaError
    if code in _UNREACHABLE:
        kind = BrokerUnreachableError
    elif code in _AUTHENTICATION:
        kind = AuthenticationError
    elif code in _TLS:
        kind = TlsError
    elif code in _AUTHORIZATION:
        kind = AuthorizationError
    elif code in _NOT_FOUND:
        kind = TopicNotFoundError
    elif code == _CKError.TOPIC_ALREADY_EXISTS:
        kind = TopicAlreadyExistsError
    retriable = bool(error.retriable()) or code in _TRANSIENT
    return kind(detail, code=error.name(), retriable=retriable)


#: What each refusal means, for the message: the client cannot tell by itself.
_REFUSALS = {
    _CKError._AUTHENTICATION: "SASL authentication failed (check MILLSTREAM_SASL_USERNAME, "
    "MILLSTREAM_SASL_PASSWORD and MILLSTREAM_SASL_MECHANISM)",
    _CKError.SASL_AUTHENTICATION_FAILED: "SASL authentication failed (check "
    "MILLSTREAM_SASL_USERNAME, MILLSTREAM_SASL_PASSWORD and MILLSTREAM_SASL_MECHANISM)",
    _CKError._SSL: "TLS certificate verification failed (is the broker's certificate "
    "signed by the CA in MILLSTREAM_SSL_CA_LOCATION?)",
}
#: Words of an authentication or TLS error that mean the connection dropped during the
#: handshake (a broker restarting, a client closing), not that the cluster refused it:
#: "SASL ... handshake failed: Local: Broker transport failure ... (in state DOWN)".
_DROPPED = ("Disconnected", "onnection reset", "transport failure", "in state DOWN", "timed out")


def refusal(error: _CKError) -> KafkaError | None:
    """The millstream error for a client-level error event when it means the cluster
    refuses this client for good (wrong credentials, untrusted certificate), else None.

    librdkafka reports such errors through its error callback and then retries the
    connection for ever; the caller raises the error so the client fails instead.
    Authorization errors are not client-level events: they come with the request
    they refuse (a consumed record's error, a delivery report, an admin result).
    """
    code = error.code()
    if code not in _REFUSALS:
        return None
    text = error.str()
    if any(word in text for word in _DROPPED):
        return None
    kind = TlsError if code in _TLS else AuthenticationError
    return kind(f"{_REFUSALS[code]}: {text}", code=error.name())


def from_exception(exc: BaseException, context: str) -> KafkaError:
    """A millstream error for an exception raised by confluent-kafka."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], _CKError):
        return from_client_error(exc.args[0], context)
    return KafkaError(f"{context}: {exc}")


def requires_abort(exc: BaseException) -> bool:
    """Whether confluent-kafka raised ``exc`` because the open transaction can only be
    aborted (librdkafka's abortable error state; produce() then reports _STATE)."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if not isinstance(error, _CKError):
        return False
    return bool(error.txn_requires_abort()) or error.code() == _CKError._STATE


def admin_answer(future: concurrent.futures.Future[Any], what: str, timeout: float) -> Any:
    """The result of an admin request, waited for up to ``timeout`` seconds, with its
    failures as millstream errors (``what`` says what was asked, for the message).

    Raises:
        KafkaError: the cluster refused or failed the request.
        BrokerUnreachableError: no answer within ``timeout``.
    """
    try:
        return future.result(timeout=timeout)
    except KafkaException as exc:
        raise from_exception(exc, what) from exc
    except concurrent.futures.TimeoutError as exc:
        raise BrokerUnreachableError(
            f"{what}: no answer within {timeout:g}s", retriable=True
        ) from exc
