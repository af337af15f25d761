"""``millstream publish`` and ``millstream topics`` against the real cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from support import consume_all, delete_topics, record_count
from typer.testing import CliRunner, Result

from millstream.cli import cli
from millstream.config import Settings
from millstream.kafka import TopicAdmin, TopicSpec
from millstream.producers.generators import TransactionGenerator

pytestmark = pytest.mark.timeout(120)

RECORDS = [
    {"card": "c-1", "amount": 10.5, "ts": 1_700_000_000_001},
    {"card": "c-2", "amount": 99, "ts": 1_700_000_000_002, "tags": ["a", "b"]},
    {"card": "c-1", "amount": 3, "ts": 1_700_000_000_003, "nested": {"x": None}},
]


@pytest.fixture
def run(bootstrap_servers: str) -> Callable[..., Result]:
    runner = CliRunner()
    env = {"MILLSTREAM_BOOTSTRAP_SERVERS": bootstrap_servers, "COLUMNS": "250"}

    def invoke(*args: str, input: str | None = None, **extra_env: str) -> Result:
        return runner.invoke(cli, list(args), input=input, env={**env, **extra_env})

    return invoke


@pytest.fixture
def topic(
    unique_name: Callable[[str], str], settings: Settings, admin: TopicAdmin
) -> Iterator[str]:
    name = unique_name("topic")
    admin.create([TopicSpec(name, 3)])
    yield name
    delete_topics(settings, [name])


@pytest.fixture
def new_topic(unique_name: Callable[[str], str], settings: Settings) -> Iterator[str]:
    """A name for a topic the test itself creates; deleted afterwards if it exists."""
    name = unique_name("new")
    yield name
    delete_topics(settings, [name])


def jsonl(records: list[dict[str, object]]) -> str:
    return "".join(orjson.dumps(r).decode() + "\n" for r in records)


def test_publish_a_file_with_key_and_timestamp_fields(
    run: Callable[..., Result], settings: Settings, topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(jsonl(RECORDS))
    result = run(
        "publish", topic, "--file", str(path), "--key-field", "card", "--timestamp-field", "ts"
    )
    assert result.exit_code == 0, result.output
    assert f"published 3 records to {topic} in" in result.stdout
    assert "rec/s" in result.stdout
    consumed = consume_all(settings, topic, count=3, timeout=30)
    got = sorted((r.timestamp, r.key, orjson.loads(r.value or b"")) for r in consumed)
    assert got == [(r["ts"], str(r["card"]).encode(), r) for r in RECORDS]
    assert len({r.partition for r in consumed if r.key == b"c-1"}) == 1  # keyed partitioning


def test_publish_from_stdin_and_values(
    run: Callable[..., Result], settings: Settings, topic: str
) -> None:
    result = run("publish", topic, input=jsonl(RECORDS) + "\n")
    assert result.exit_code == 0, result.output
    result = run("publish", topic, "--value", '{"a": 1}', "--value", "[2]", "-k", "a")
    assert result.exit_code == 1
    assert "--value #2: expected a JSON object" in result.stderr
    result = run("publish", topic, "--value", '{"a": 1}', "--value", '"two"')
    assert result.exit_code == 0, result.output
    values = sorted(r.value or b"" for r in consume_all(settings, topic, count=5, timeout=30))
    assert values == sorted([orjson.dumps(r) for r in RECORDS] + [b'{"a":1}', b'"two"'])


def test_a_malformed_line_is_named_and_nothing_is_published(
    run: Callable[..., Result], settings: Settings, topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(jsonl(RECORDS[:2]) + '{"card": "c-3", "amount": \n' + jsonl(RECORDS[2:]))
    result = run("publish", topic, "--file", str(path))
    assert result.exit_code == 1
    assert f"{path} line 3: invalid JSON" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert record_count(settings, topic) == 0


def test_a_missing_field_and_a_bad_timestamp_are_named(
    run: Callable[..., Result], topic: str
) -> None:
    result = run("publish", topic, "-k", "card", input='{"card": "x"}\n{"amount": 1}\n')
    assert result.exit_code == 1
    assert "stdin line 2: the record has no field 'card'" in result.stderr
    result = run("publish", topic, "-t", "ts", input='{"ts": "yesterday"}\n')
    assert result.exit_code == 1
    assert "stdin line 1: field 'ts' must be epoch milliseconds" in result.stderr


def test_a_missing_topic_is_an_error_unless_partitions_are_given(
    run: Callable[..., Result], settings: Settings, new_topic: str, admin: TopicAdmin
) -> None:
    result = run("publish", new_topic, "--value", "1")
    assert result.exit_code == 1
    assert f"topic '{new_topic}' does not exist" in result.stderr
    result = run("publish", new_topic, "--value", "1", "--partitions", "2")
    assert result.exit_code == 0, result.output
    assert admin.describe(new_topic).partitions == 2
    assert record_count(settings, new_topic) == 1


def test_publish_generated_transactions(
    run: Callable[..., Result], settings: Settings, topic: str
) -> None:
    result = run("publish", topic, "--generate", "500", "--seed", "5")
    assert result.exit_code == 0, result.output
    assert f"published 500 records to {topic}" in result.stdout
    consumed = consume_all(settings, topic, count=500, timeout=30)
    expected = TransactionGenerator(5).take(500)
    got = sorted((r.timestamp, r.key, orjson.loads(r.value or b"")) for r in consumed)
    assert got == [(t["timestamp"], t["card_id"].encode(), t) for t in expected]


def test_topics_round_trip(run: Callable[..., Result], new_topic: str, admin: TopicAdmin) -> None:
    result = run(
        "topics", "create", new_topic, "--partitions", "4", "--config", "retention.ms=3600000"
    )
    assert result.exit_code == 0, result.output
    assert f"created topic {new_topic}: 4 partition(s)" in result.stdout

    result = run("topics", "create", new_topic, "--partitions", "4")
    assert result.exit_code == 1
    assert "already exists" in result.stderr

    result = run("topics", "describe", new_topic)
    assert result.exit_code == 0, result.output
    assert "retention.ms" in result.stdout and "3600000" in result.stdout
    assert "partitions" in result.stdout

    result = run("topics", "list")
    assert result.exit_code == 0, result.output
    assert any(new_topic in line and " 4 " in line for line in result.stdout.splitlines())

    result = run("topics", "delete", new_topic, input="n\n")
    assert result.exit_code == 1
    assert admin.exists(new_topic)
    result = run("topics", "delete", new_topic, "--yes")
    assert result.exit_code == 0, result.output
    assert not admin.exists(new_topic)

    for args in (["describe", new_topic], ["delete", new_topic, "--yes"]):
        result = run("topics", *args)
        assert result.exit_code == 1
        assert f"topic '{new_topic}' does not exist" in result.stderr


def test_bad_input_to_topics_create_is_one_clear_line(run: Callable[..., Result]) -> None:
    result = run("topics", "create", "whatever", "--partitions", "1", "--config", "novalue")
    assert result.exit_code == 1
    assert "--config 'novalue' is not KEY=VALUE" in result.stderr


def test_an_unreachable_broker_is_one_red_line(run: Callable[..., Result]) -> None:
    for args in (["topics", "list"], ["publish", "anything", "--value", "1"]):
        result = run(
            *args, MILLSTREAM_BOOTSTRAP_SERVERS="127.0.0.1:1", MILLSTREAM_CLIENT_TIMEOUT="1"
        )
        assert result.exit_code == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: no Kafka broker answered")
        assert "Traceback" not in result.output
