"""A SASL_SSL cluster (``millstream dev up --security sasl_ssl``): the right credentials
work end to end, and each way of being refused gives its own clear error, quickly.

The module brings up one secured 1-node cluster of its own (ports 39400+, a temporary
local dir) with the app user ``secure``: it may use only names starting with
``secure``. Outputs are read as the super user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from eos_support import EOS, EosTopics, closers, read_outcome, transactions, window_oracle
from pydantic import SecretStr
from support import WorkerProcess, reserve_base_port, wait_for

from millstream.config import Settings, load_settings
from millstream.dev import LocalCluster
from millstream.dev.security import Credentials, generate_ca
from millstream.errors import (
    AuthenticationError,
    AuthorizationError,
    KafkaError,
    TlsError,
)
from millstream.kafka import TopicAdmin, TopicSpec, make_consumer, make_producer
from millstream.kafka.transactions import init_transactions
from millstream.processors.batches import partition_runs
from millstream.producers import Publisher

APP_USER = "secure"
MILLSTREAM = str(Path(sys.executable).parent / "millstream")
#: A refusal must be reported well before the client timeout (10 s) runs out: it is
#: raised from the first failed connection (about 0.5 s here), not waited out.
REFUSAL_BOUND = 8.0
#: A worker that is refused must exit within this many seconds of starting (Python
#: start-up and imports included).
WORKER_EXIT_BOUND = 45.0


@dataclass(frozen=True)
class SecureCluster:
    bootstrap: str
    credentials: Credentials
    app: Settings
    admin: Settings
    #: The CA of another cluster: the broker's certificate does not verify against it.
    other_ca: Path

    def env(self, settings: Settings, **extra: str) -> dict[str, str]:
        """A process environment connecting like ``settings``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MILLSTREAM_")}
        env.update(
            MILLSTREAM_BOOTSTRAP_SERVERS=self.bootstrap,
            MILLSTREAM_SECURITY_PROTOCOL=settings.security_protocol,
            MILLSTREAM_SASL_MECHANISM=str(settings.sasl_mechanism),
            MILLSTREAM_SASL_USERNAME=str(settings.sasl_username),
            MILLSTREAM_SSL_CA_LOCATION=str(settings.ssl_ca_location),
        )
        assert settings.sasl_password is not None
        env["MILLSTREAM_SASL_PASSWORD"] = settings.sasl_password.get_secret_value()
        return {**env, **extra}


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    root = tmp_path_factory.mktemp("secure")
    with ExitStack() as reservations:
        port = reserve_base_port(1, reservations, first=39400, last=39490)
        base = load_settings(local_dir=root / "local", dev_port=port)
        cluster = LocalCluster(base)
        try:
            bootstrap = cluster.up(1, security="sasl_ssl", app_id=APP_USER)
            credentials = cluster.credentials()
            assert credentials is not None
            yield SecureCluster(
                bootstrap,
                credentials,
                credentials.client_settings(base, bootstrap),
                credentials.client_settings(base, bootstrap, super_user=True),
                generate_ca(root / "other-ca", "another CA"),
            )
        finally:
            cluster.down(wipe=True)


def _with(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update=changes)


def _wrong_password(secure: SecureCluster) -> Settings:
    return _with(secure.app, sasl_password=SecretStr("not-the-password"))


def _untrusted(secure: SecureCluster) -> Settings:
    return _with(secure.app, ssl_ca_location=str(secure.other_ca))


def _timed(action: Callable[[], object], expected: type[KafkaError]) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(expected) as caught:
        action()
    return str(caught.value), time.monotonic() - started


def _cli(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [MILLSTREAM, *args], env=env, capture_output=True, text=True, timeout=120
    )
    return result, time.monotonic() - started


def _refused_worker(env: dict[str, str], log: Path) -> str:
    """Runs a worker of apps/eos.py that the cluster refuses; returns its output once it
    exited non-zero."""
    worker = WorkerProcess(EOS, env, log)
    code = worker.wait(WORKER_EXIT_BOUND)
    if code is None:
        worker.kill()
    assert code is not None, (
        f"the worker still ran after {WORKER_EXIT_BOUND}s:\n{worker.text()[-3000:]}"
    )
    assert code != 0, worker.text()[-3000:]
    return worker.text()


def _names(prefix: str) -> EosTopics:
    app = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return EosTopics(app, f"{app}-in", f"{app}-out", f"{app}-out-counts")


def test_the_app_user_publishes_and_runs_a_stateful_exactly_once_worker(
    secure: SecureCluster, tmp_path: Path
) -> None:
    topics = _names(APP_USER)
    cards, n = 20, 3000
    records = transactions(n, cards)
    env = topics.env(secure.bootstrap, tmp_path / "state")
    env = secure.env(secure.app, **{k: v for k, v in env.items() if k.startswith("TEST_")})
    env.update(MILLSTREAM_LOCAL_DIR=str(tmp_path / "state"), TEST_PARTITIONS="3")
    worker = WorkerProcess(EOS, env, tmp_path / "worker.log")
    try:
        wait_for(lambda: worker.running() and " assigned " in worker.text(), 90, "assignment")
        lines = tmp_path / "records.jsonl"
        lines.write_bytes(b"\n".join(orjson.dumps(v) for _, v in records) + b"\n")
        published, _ = _cli(env, "publish", topics.source, "--file", str(lines), "-k", "card")
        assert published.returncode == 0, published.stderr
        assert f"published {n} records to {topics.source}" in published.stdout
        closing = b"\n".join(orjson.dumps(v) for _, v in closers(cards))
        lines.write_bytes(closing + b"\n")
        published, _ = _cli(env, "publish", topics.source, "--file", str(lines), "-k", "card")
        assert published.returncode == 0, published.stderr
        expected = window_oracle(records)

        def complete() -> bool:
            worker.running()
            outcome = read_outcome(secure.admin, topics, timeout=30)
            return len(outcome.enriched_ids) >= n and outcome.values == expected

        wait_for(complete, 120, "every record enriched and every window counted", interval=2)
    finally:
        code = worker.stop()
    outcome = read_outcome(secure.admin, topics)
    assert set(outcome.enriched_ids) == set(range(n))
    assert outcome.duplicates() == 0
    assert outcome.values == expected
    assert code == 0, worker.text()[-3000:]
    # The worker ran as the app user, with its state in a changelog and transactions.
    assert secure.credentials.app_user == APP_USER
    admin = TopicAdmin(secure.admin)
    assert f"{topics.app}-card-counts-changelog" in admin.list()
    # `millstream status` works as the app user too: its group, offsets and lag.
    status, _ = _cli(env, "status", topics.app, "--json")
    assert status.returncode == 0, status.stderr
    reading = orjson.loads(status.stdout.splitlines()[-1])
    sources = [p for p in reading["partitions"] if p["topic"] == topics.source]
    assert len(sources) == 3, reading
    for partition in sources:
        # Input published without transactions: the stopped group read all of it.
        assert partition["committed"] == partition["end"] > 0, partition
        assert partition["lag"] == 0, partition


@pytest.mark.parametrize(
    ("make_settings", "expected", "message"),
    [
        (_wrong_password, AuthenticationError, "SASL authentication failed"),
        (_untrusted, TlsError, "TLS certificate verification failed"),
    ],
    ids=["wrong-password", "untrusted-certificate"],
)
def test_a_refused_connection_fails_fast_with_its_own_error(
    secure: SecureCluster,
    tmp_path: Path,
    make_settings: Callable[[SecureCluster], Settings],
    expected: type[KafkaError],
    message: str,
) -> None:
    settings = make_settings(secure)
    text, elapsed = _timed(lambda: TopicAdmin(settings).list(), expected)
    assert message in text and elapsed < REFUSAL_BOUND, (text, elapsed)
    print(f"\n{expected.__name__}: admin {elapsed:.2f}s", end="")

    def publish() -> None:
        publisher = Publisher(settings=settings)
        publisher.publish(f"{APP_USER}-anything", {"n": 1})
        publisher.flush(30)

    text, elapsed = _timed(publish, expected)
    assert message in text and elapsed < REFUSAL_BOUND, (text, elapsed)
    print(f", publisher {elapsed:.2f}s", end="")
    # The other refusal's words never appear: the two causes are told apart.
    other = {AuthenticationError: "TLS", TlsError: "SASL"}[expected]
    assert other not in text.split(":")[0]

    env = secure.env(settings)
    for command in (["topics", "list"], ["publish", f"{APP_USER}-anything", "--value", "1"]):
        result, elapsed = _cli(env, *command)
        assert result.returncode == 1, result
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert elapsed < REFUSAL_BOUND + 10, (command, elapsed)
        print(f", {command[0]} CLI {elapsed:.2f}s", end="")

    topics = _names(APP_USER)
    worker_env = {
        **env,
        **{k: v for k, v in topics.env(secure.bootstrap).items() if k.startswith("TEST_")},
    }
    worker_env["MILLSTREAM_LOCAL_DIR"] = str(tmp_path / "state")
    started = time.monotonic()
    output = _refused_worker(worker_env, tmp_path / "worker.log")
    assert message in output and "Traceback" not in output, output[-3000:]
    print(f", worker exited after {time.monotonic() - started:.2f}s")


def test_a_topic_the_acls_deny_is_an_authorization_error_naming_it(
    secure: SecureCluster, tmp_path: Path
) -> None:
    denied = f"elsewhere-{uuid.uuid4().hex[:8]}"
    TopicAdmin(secure.admin).create([TopicSpec(denied, 1)])
    app = TopicAdmin(secure.app)
    assert not app.exists(denied), "the ACLs hide the topic from the app user"
    text, elapsed = _timed(lambda: app.check_access(denied), AuthorizationError)
    assert repr(denied) in text and "ACLs" in text and elapsed < REFUSAL_BOUND, text

    env = secure.env(secure.app)
    result, _ = _cli(env, "publish", denied, "--value", "1")
    assert result.returncode == 1
    assert repr(denied) in result.stderr and "TOPIC_AUTHORIZATION_FAILED" in result.stderr
    result, _ = _cli(env, "topics", "create", denied, "--partitions", "1")
    assert result.returncode == 1
    assert repr(denied) in result.stderr and "ACLs" in result.stderr, result.stderr

    # A worker of the app user whose input is the denied topic.
    topics = _names(APP_USER)
    worker_env = {
        **env,
        **{k: v for k, v in topics.env(secure.bootstrap).items() if k.startswith("TEST_")},
    }
    worker_env.update(TEST_IN=denied, MILLSTREAM_LOCAL_DIR=str(tmp_path / "state"))
    started = time.monotonic()
    output = _refused_worker(worker_env, tmp_path / "worker.log")
    assert repr(denied) in output and "TOPIC_AUTHORIZATION_FAILED" in output, output[-3000:]
    print(
        f"\ndenied topic: admin {elapsed:.2f}s, worker exited after "
        f"{time.monotonic() - started:.2f}s"
    )


def test_a_group_and_a_transactional_id_the_acls_deny_are_named(secure: SecureCluster) -> None:
    allowed = f"{APP_USER}-{uuid.uuid4().hex[:8]}"
    TopicAdmin(secure.app).create([TopicSpec(allowed, 1)])
    group = f"elsewhere-{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(secure.app, group)
    consumer.subscribe([allowed])

    def consume_until_refused() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for _ in partition_runs(consumer.consume(100, 0.5), group=group):
                pass
        raise AssertionError("no refusal within 30 s")

    try:
        text, elapsed = _timed(consume_until_refused, AuthorizationError)
    finally:
        consumer.close()
    assert repr(group) in text and "GROUP_AUTHORIZATION_FAILED" in text, text
    assert elapsed < REFUSAL_BOUND, elapsed
    print(f"\ngroup refused after {elapsed:.2f}s")

    transactional_id = f"elsewhere-{uuid.uuid4().hex[:8]}"
    producer = make_producer(secure.app, **{"transactional.id": transactional_id})
    text, elapsed = _timed(
        lambda: init_transactions(producer, 10, transactional_id), AuthorizationError
    )
    assert repr(transactional_id) in text and "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" in text
    assert elapsed < REFUSAL_BOUND, elapsed
    print(f"transactional id refused after {elapsed:.2f}s")
