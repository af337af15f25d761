"""Topic administration: create, describe, list and delete topics; probe the cluster."""

from __future__ import annotations

import builtins
import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from millstream.config import Settings
from millstream.errors import (
    AuthorizationError,
    BrokerUnreachableError,
    KafkaError,
    TopicNotFoundError,
)
from millstream.kafka.clients import make_admin
from millstream.kafka.errors import admin_answer, from_client_error, from_exception

#: Answers meaning the client's picture of a partition is behind the cluster's: its
#: leader moved, or its leader epoch went up (a broker died or came back). librdkafka's
#: admin client does not refresh its metadata for them and goes on asking with what it
#: had (a worker's long-lived one failed every checkpoint after a broker restart); a
#: new client looks the leader up afresh.
_STALE_METADATA = {
    "FENCED_LEADER_EPOCH",
    "UNKNOWN_LEADER_EPOCH",
    "NOT_LEADER_OR_FOLLOWER",
    "NOT_LEADER_FOR_PARTITION",
    "LEADER_NOT_AVAILABLE",
}


@dataclass(frozen=True)
class TopicSpec:
    """What a topic should look like. ``replication=None`` means min(3, brokers)."""

    name: str
    partitions: int
    replication: int | None = None
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicInfo:
    """What a topic looks like on the cluster."""

    name: str
    partitions: int
    replication: int
    config: dict[str, str]


#: librdkafka sends a request to one broker and retries it on that broker only, so a
#: request that went to a broker which has just died waits out its whole timeout even
#: though the others answer. Requests that may be asked again get this share of
#: ``client_timeout`` each (at least _MIN_ATTEMPT seconds), then go out anew.
_ATTEMPTS = 5
_MIN_ATTEMPT = 1.0
_RETRY_PAUSE = 0.1

_T = TypeVar("_T")


class TopicAdmin:
    """Topic management against one cluster. Every call blocks up to ``settings.client_timeout``."""

    def __init__(self, settings: Settings, client: AdminClient | None = None) -> None:
        self._settings = settings
        self._timeout = settings.client_timeout
        #: A client passed in is kept for good; one made here is replaced when its
        #: metadata turns out to be stale.
        self._renewable = client is None
        self._client = client or make_admin(settings)

    def broker_count(self) -> int:
        """Number of live brokers; raises BrokerUnreachableError when none answers."""
        return len(self._metadata().brokers)

    def list(self) -> builtins.list[str]:
        """Names of the topics on the cluster, internal ones excluded, sorted."""
        return sorted(t for t in self._metadata().topics if not t.startswith("__"))

    def partition_counts(self) -> dict[str, int]:
        """Partition count of every topic, internal ones excluded, sorted by name (one request)."""
        topics = self._metadata().topics
        return {
            name: len(topics[name].partitions)
            for name in sorted(topics)
            if not name.startswith("__")
        }

    def exists(self, name: str) -> bool:
        """Whether the cluster has topic ``name`` (one the ACLs hide from this client
        does not exist for it: see :meth:`check_access`)."""
        return name in self._metadata().topics

    def check_access(self, name: str) -> None:
        """Raise AuthorizationError when the cluster's ACLs deny this client topic ``name``.

        A topic a client may not describe is missing from the cluster's list, as if it
        did not exist; asked for by name, the cluster says why.
        """
        topic = self._metadata(name).topics.get(name)
        if topic is not None and topic.error is not None:
            error = from_client_error(topic.error, f"topic {name!r}")
            if isinstance(error, AuthorizationError):
                raise error

    def describe(self, name: str) -> TopicInfo:
        """Partitions, replication and non-default config of ``name``.

        Raises:
            TopicNotFoundError: the topic does not exist.
        """
        metadata = self._metadata(name)
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None:
            raise TopicNotFoundError(f"topic {name!r} does not exist")
        partitions = topic.partitions
        replication = len(next(iter(partitions.values())).replicas) if partitions else 0
        return TopicInfo(name, len(partitions), replication, self._topic_config(name))

    def create(self, specs: Iterable[TopicSpec], *, if_missing: bool = True) -> builtins.list[str]:
        """Create topics; returns the names created. Existing ones are skipped when ``if_missing``.

        Raises:
            TopicAlreadyExistsError: a topic exists and ``if_missing`` is False.
        """
        specs = list(specs)
        if not specs:
            return []
        default_replication = self._settings.topic_replication_factor or min(3, self.broker_count())
        new = [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=s.replication or default_replication,
                config=dict(s.config),
            )
            for s in specs
        ]
        created: builtins.list[str] = []
        futures = self._client.create_topics(new, operation_timeout=self._timeout)
        for name, future in futures.items():
            try:
                self._result(future, f"creating topic {name!r}")
                created.append(name)
            except KafkaError as error:
                if if_missing and error.code == "TOPIC_ALREADY_EXISTS":
                    continue
                raise
        self._wait_for_metadata(created)
        return created

    def delete(self, names: Iterable[str]) -> None:
        """Delete topics; raises TopicNotFoundError for one that does not exist."""
        names = list(names)
        if not names:
            return
        futures = self._client.delete_topics(names, operation_timeout=self._timeout)
        for name, future in futures.items():
            self._result(future, f"deleting topic {name!r}")

    def purge(self, offsets: dict[tuple[str, int], int]) -> None:
        """Delete the records before each offset, without waiting for the outcome.

        For internal topics whose records are consumed and committed: a failed purge
        only leaves records that a later purge removes.
        """
        if offsets:
            request = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            self._client.delete_records(request, operation_timeout=0)

    def group_protocols(self) -> set[str]:
        """The consumer-group protocols the cluster offers (``classic``, ``consumer``, ...).

        Read from a broker's ``group.coordinator.rebalance.protocols``, asking the
        brokers in turn until one answers; brokers too old to have the setting, or a
        client not allowed to read broker configs, get {"classic"}.
        """
        for broker in self._metadata().brokers:
            resource = ConfigResource(ResourceType.BROKER, str(broker))
            try:
                future = self._client.describe_configs([resource])[resource]
                entries = self._result(future, f"reading the config of broker {broker}")
            except AuthorizationError:
                break
            except KafkaError:
                continue
            entry = entries.get("group.coordinator.rebalance.protocols")
            if entry is None or not entry.value:
                break
            return {p.strip() for p in str(entry.value).split(",")}
        return {"classic"}

    def end_offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The end offset (high watermark) of each (topic, partition), in one request.

        Asked once more through a new client when the answer says this one's metadata
        is stale (a partition's leader or leader epoch changed since it looked).
        """
        wanted = list(partitions)
        try:
            return self._end_offsets(wanted)
        except KafkaError as error:
            if not (self._renewable and error.code in _STALE_METADATA):
                raise
        self._client = make_admin(self._settings)
        return self._end_offsets(wanted)

    def _end_offsets(
        self, partitions: builtins.list[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        request = {TopicPartition(t, p): latest for t, p in partitions}
        if not request:
            return {}
        futures = self._client.list_offsets(request, request_timeout=self._timeout)
        return {
            (tp.topic, tp.partition): self._result(future, "listing end offsets").offset
            for tp, future in futures.items()
        }

    def _topic_config(self, name: str) -> dict[str, str]:
        """The non-default config of ``name``.

        librdkafka sends a topic's DescribeConfigs to the broker the last metadata
        response named controller: under KRaft a random live broker, and one killed a
        moment ago counts as live until the controller fences it
        (``broker.session.timeout.ms``). Each attempt is therefore short, and a fresh
        metadata request before the next one names a broker again.
        """
        resource = ConfigResource(ResourceType.TOPIC, name)
        what = f"describing topic {name!r}"

        def ask(seconds: float) -> Any:
            future = self._client.describe_configs([resource], request_timeout=seconds)
            try:
                return self._result(future[resource], what)
            except BrokerUnreachableError as exc:
                raise BrokerUnreachableError(
                    f"{what}: no answer within {self._timeout:g}s", code=exc.code, retriable=True
                ) from exc

        entries = self._asked_again(ask, refresh=lambda seconds: self._metadata_once(name, seconds))
        return {k: str(v.value) for k, v in entries.items() if not v.is_default}

    def _asked_again(
        self, ask: Callable[[float], _T], refresh: Callable[[float], object] | None = None
    ) -> _T:
        """``ask(seconds)`` until it answers, asking anew after a BrokerUnreachableError
        (after ``refresh(seconds)`` when given), within about ``client_timeout`` in all;
        the last attempt's error is raised."""
        deadline = time.monotonic() + self._timeout
        share = max(self._timeout / _ATTEMPTS, _MIN_ATTEMPT)

        def seconds() -> float:
            return max(min(share, deadline - time.monotonic()), _RETRY_PAUSE)

        while True:
            try:
                return ask(seconds())
            except BrokerUnreachableError:
                if time.monotonic() + _RETRY_PAUSE >= deadline:
                    raise
            time.sleep(_RETRY_PAUSE)  # an attempt that failed at once must not spin
            if refresh is not None:
                with contextlib.suppress(BrokerUnreachableError):
                    refresh(seconds())

    def _result(self, future: concurrent.futures.Future[Any], what: str) -> Any:
        """The outcome of an admin request, with its failures as millstream errors; a
        request that found no broker raises the cluster's refusal when it had one."""
        try:
            return admin_answer(future, what, self._timeout)
        except BrokerUnreachableError:
            self._raise_refusal()
            raise

    def _raise_refusal(self) -> None:
        """Raise the cluster's refusal of this client (wrong credentials, untrusted
        certificate) when that is why a request failed.

        The admin client's requests only time out when no broker lets it in; the
        reason waits as an error event that this client's poll() serves (to the error
        callback of millstream.kafka.clients, which raises it). A plaintext client
        cannot be refused that way, and its queue is left alone: serving it would also
        print the client's queued log lines.
        """
        if self._settings.security_protocol != "PLAINTEXT":
            self._client.poll(0)

    def _wait_for_metadata(self, names: builtins.list[str]) -> None:
        # Created topics become visible to metadata requests a moment after the
        # create call returns; producers started right away would see them unknown.
        deadline = time.monotonic() + self._timeout
        pending: set[str] = set(names)
        while pending and time.monotonic() < deadline:
            topics = self._metadata().topics
            pending = {
                n
                for n in pending
                if n not in topics
                or topics[n].error is not None
                or any(p.leader < 0 for p in topics[n].partitions.values())
            }
            if pending:
                time.sleep(0.05)

    def _metadata(self, topic: str | None = None):  # type: ignore[no-untyped-def]
        return self._asked_again(lambda seconds: self._metadata_once(topic, seconds))

    def _metadata_once(self, topic: str | None, seconds: float):  # type: ignore[no-untyped-def]
        try:
            return self._client.list_topics(topic=topic, timeout=seconds)
        except KafkaException as exc:
            error = from_exception(exc, "reading cluster metadata")
            if error.code in {"_TRANSPORT", "_TIMED_OUT", "_ALL_BROKERS_DOWN"}:
                self._raise_refusal()
                raise BrokerUnreachableError(
                    f"no Kafka broker answered at {self._settings.bootstrap_servers} "
                    f"within {self._timeout:g}s (set MILLSTREAM_BOOTSTRAP_SERVERS, or start "
                    "a local cluster with `millstream dev up`; brokers that expect another "
                    "MILLSTREAM_SECURITY_PROTOCOL than "
                    f"{self._settings.security_protocol} look the same)",
                    code=error.code,
                    retriable=True,
                ) from exc
            raise error from exc


def check_connection(settings: Settings) -> int:
    """Probe the cluster; returns the broker count.

    Raises:
        BrokerUnreachableError: no broker answered within ``settings.client_timeout``.
        AuthenticationError, AuthorizationError: the cluster answered but refused.
    """
    return TopicAdmin(settings).broker_count()


__all__ = [
    "KafkaError",
    "TopicAdmin",
    "TopicInfo",
    "TopicSpec",
    "check_connection",
    "from_client_error",
]
