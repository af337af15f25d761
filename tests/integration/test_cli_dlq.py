"""``millstream dlq list|show|replay|purge`` against the real cluster.

Each test writes five dead letters in the format of docs/tasks.md to its own
``{app}-dlq`` (two partitions): two task names, two error types, and one stream dead
letter without task headers. The expected rows, records and headers are written out
here by hand from those five, not derived from the code under test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from support import delete_topics, record_count
from typer.testing import CliRunner, Result

from millstream.cli import cli
from millstream.config import Settings
from millstream.kafka import (
    Producer,
    TopicAdmin,
    TopicPartition,
    TopicSpec,
    make_consumer,
    make_producer,
)

pytestmark = pytest.mark.timeout(120)

Headers = list[tuple[str, bytes]]

#: The dead letters' timestamp: 2025-12-01 00:46:40 UTC.
STAMP = 1_764_550_000_000
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "shop/tasks.py", line 12, in charge\n'
    '    raise ValueError("card declined")\n'
    "ValueError: card declined\n"
)


@dataclass(frozen=True)
class Letter:
    """One dead letter this module writes: where it goes, and what it says."""

    partition: int
    key: str
    value: dict[str, object]
    headers: Headers


@dataclass(frozen=True)
class Shop:
    app: str
    dlq: str
    charge_topic: str
    email_topic: str


def task_letter(
    shop: Shop, partition: int, task: str, task_id: str, error_type: str, message: str
) -> Letter:
    topic = shop.charge_topic if task == "charge" else shop.email_topic
    value = {"id": task_id, "task": task, "args": [task_id], "kwargs": {}, "reply": None}
    own: Headers = [
        ("traceparent", f"00-{task_id}".encode()),
        ("millstream.task.attempts", b"3"),
        ("millstream.task.first_failure", b"1764549990000"),
        ("millstream.task.due", b"1764549998000"),
    ]
    added = {
        "millstream.error": f"{error_type.rsplit('.', 1)[1]}: {message}",
        "millstream.error.type": error_type,
        "millstream.error.traceback": TRACEBACK,
        "millstream.error.step": f"task({task})",
        "millstream.task.id": task_id,
        "millstream.task.name": task,
        "millstream.task.attempts": "4",
        "millstream.source.topic": topic,
        "millstream.source.partition": "0",
        "millstream.source.offset": "17",
    }
    return Letter(partition, task_id, value, own + [(k, v.encode()) for k, v in added.items()])


def stream_letter(shop: Shop) -> Letter:
    headers = {
        "millstream.error": "ValueError: bad amount",
        "millstream.error.type": "builtins.ValueError",
        "millstream.error.step": "map(parse)",
        "millstream.source.topic": f"{shop.app}-payments",
        "millstream.source.partition": "0",
        "millstream.source.offset": "3",
    }
    return Letter(0, "card-9", {"amount": "x"}, [(k, v.encode()) for k, v in headers.items()])


def letters(shop: Shop) -> list[Letter]:
    """In the order they land: partition 0 gets offsets 0, 1, 2; partition 1 gets 0, 1."""
    return [
        task_letter(shop, 0, "charge", "c-1", "builtins.ValueError", "card declined"),
        task_letter(shop, 0, "email", "e-1", "millstream.errors.TaskTimeout", "after 30s"),
        stream_letter(shop),
        task_letter(shop, 1, "charge", "c-2", "millstream.errors.TaskTimeout", "after 30s"),
        task_letter(shop, 1, "email", "e-2", "builtins.ValueError", "no such address"),
    ]


def produce_letters(
    settings: Settings, topic: str, batch: list[Letter], producer: Producer | None = None
) -> None:
    errors: list[str] = []
    producer = producer or make_producer(settings)
    for letter in batch:
        producer.produce(
            topic,
            orjson.dumps(letter.value),
            letter.key.encode(),
            partition=letter.partition,
            timestamp=STAMP,
            headers=letter.headers,
            on_delivery=lambda err, _m: err and errors.append(str(err)),
        )
        producer.flush(30)  # one at a time, so each partition's offsets follow the list
    assert not errors, errors


@pytest.fixture
def shop(
    unique_name: Callable[[str], str], settings: Settings, admin: TopicAdmin
) -> Iterator[Shop]:
    app = unique_name("app")
    shop = Shop(app, f"{app}-dlq", f"{app}-task-charge", f"{app}-task-email")
    admin.create([TopicSpec(shop.dlq, 2), TopicSpec(shop.charge_topic, 1)])
    admin.create([TopicSpec(shop.email_topic, 1)])
    produce_letters(settings, shop.dlq, letters(shop))
    yield shop
    delete_topics(settings, [t for t in admin.list() if t.startswith(app)])


@pytest.fixture
def run(bootstrap_servers: str) -> Callable[..., Result]:
    runner = CliRunner()
    env = {"MILLSTREAM_BOOTSTRAP_SERVERS": bootstrap_servers, "COLUMNS": "250"}

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, ["dlq", *args], input=input, env=env)

    return invoke


def rows(output: str) -> list[tuple[str, ...]]:
    """The body rows of the rich tables in ``output``, as tuples of stripped cells."""
    found = []
    for line in output.splitlines():
        cells = tuple(c.strip() for c in line.split("│")[1:-1])
        if cells and cells[0].isdigit():
            found.append(cells)
    return found


def listed(output: str) -> set[tuple[str, ...]]:
    """(partition, offset, task, task id, attempts, error type) of each listed row."""
    return {r[:2] + r[3:7] for r in rows(output)}


ALL_ROWS = {
    ("0", "0", "charge", "c-1", "4", "builtins.ValueError"),
    ("0", "1", "email", "e-1", "4", "millstream.errors.TaskTimeout"),
    ("0", "2", "-", "-", "-", "builtins.ValueError"),
    ("1", "0", "charge", "c-2", "4", "millstream.errors.TaskTimeout"),
    ("1", "1", "email", "e-2", "4", "builtins.ValueError"),
}


def test_list_shows_every_dead_letter_with_its_columns(
    run: Callable[..., Result], shop: Shop, tmp_path: Path
) -> None:
    result = run("list", shop.app)
    assert result.exit_code == 0, result.output
    assert listed(result.stdout) == ALL_ROWS
    first = next(r for r in rows(result.stdout) if r[:2] == ("0", "0"))
    assert first[2] == "2025-12-01 00:46:40"
    assert first[7] == "ValueError: card declined"
    assert result.stdout.rstrip().endswith(f"5 dead letters in {shop.dlq}")

    (tmp_path / "shop_app.py").write_text(f"from millstream import App\napp = App({shop.app!r})\n")
    result = run("list", f"{tmp_path}/shop_app.py:app")
    assert result.exit_code == 0, result.output
    assert listed(result.stdout) == ALL_ROWS


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--task", "charge"], {("0", "0"), ("1", "0")}),
        (["--error-type", "ValueError"], {("0", "0"), ("0", "2"), ("1", "1")}),
        (["--error-type", "builtins.ValueError"], {("0", "0"), ("0", "2"), ("1", "1")}),
        (["-e", "millstream.errors.TaskTimeout"], {("0", "1"), ("1", "0")}),
        (["--task", "email", "--error-type", "TaskTimeout"], {("0", "1")}),
        (["--error-type", "Error"], set()),
    ],
)
def test_list_filters(
    run: Callable[..., Result], shop: Shop, options: list[str], expected: set[tuple[str, str]]
) -> None:
    result = run("list", shop.app, *options)
    assert result.exit_code == 0, result.output
    assert {r[:2] for r in listed(result.stdout)} == expected
    assert f"{len(expected)} of 5 dead letters in {shop.dlq} match" in result.stdout


def test_list_limit_says_how_many_it_left_out(run: Callable[..., Result], shop: Shop) -> None:
    result = run("list", shop.app, "--limit", "2")
    assert result.exit_code == 0, result.output
    assert len(rows(result.stdout)) == 2
    assert "5 dead letters in" in result.stdout and "the first 2 shown" in result.stdout


def test_a_missing_dlq_is_an_error_naming_the_topic(
    run: Callable[..., Result], unique_name: Callable[[str], str]
) -> None:
    app = unique_name("nodlq")
    for command in (["list", app], ["replay", app], ["purge", app, "--yes"], ["show", app, "0:0"]):
        result = run(*command)
        assert result.exit_code == 1, command
        assert f"topic '{app}-dlq' does not exist" in result.stderr
        assert "Traceback" not in result.output


def test_reads_end_at_transaction_markers_and_skip_open_transactions(
    run: Callable[..., Result], shop: Shop, settings: Settings
) -> None:
    """Partition 1 after the five: a committed transactional dead letter at 2, its commit
    marker at 3, a plain one at 4, then an open transaction's record at 5."""
    committed = task_letter(shop, 1, "charge", "c-3", "builtins.ValueError", "in a txn")
    transactional = make_producer(settings, **{"transactional.id": f"{shop.app}-txn"})
    transactional.init_transactions(30)
    transactional.begin_transaction()
    produce_letters(settings, shop.dlq, [committed], producer=transactional)
    transactional.commit_transaction(30)
    result = run("list", shop.app)  # partition 1 now ends with the commit marker
    assert result.exit_code == 0, result.output
    assert f"6 dead letters in {shop.dlq}" in result.stdout

    plain = task_letter(shop, 1, "email", "e-4", "builtins.ValueError", "after the marker")
    produce_letters(settings, shop.dlq, [plain])
    transactional.begin_transaction()
    open_one = task_letter(shop, 1, "email", "e-5", "builtins.ValueError", "never committed")
    produce_letters(settings, shop.dlq, [open_one], producer=transactional)
    try:
        result = run("list", shop.app)
        assert result.exit_code == 0, result.output
        assert {r[:2] + r[3:5] for r in rows(result.stdout)} >= {
            ("1", "2", "charge", "c-3"),
            ("1", "4", "email", "e-4"),
        }
        assert "e-5" not in result.stdout
        assert f"7 dead letters in {shop.dlq}" in result.stdout

        result = run("show", shop.app, "1:3")
        assert result.exit_code == 1
        assert f"{shop.dlq} has no record at 1:3 (a transaction marker?)" in result.stderr
        result = run("show", shop.app, "1:4")
        assert result.exit_code == 0 and "key: e-4" in result.stdout
    finally:
        transactional.abort_transaction(30)


def test_show_by_position_prints_headers_key_pretty_value_and_traceback(
    run: Callable[..., Result], shop: Shop
) -> None:
    result = run("show", shop.app, "1:1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"{shop.dlq} 1:1" in out
    header_rows = {r[0]: r[1] for r in _header_rows(out)}
    expected = dict(letters(shop)[4].headers)
    assert set(header_rows) == set(expected)
    assert header_rows["millstream.error"] == "ValueError: no such address"
    assert header_rows["millstream.task.attempts"] == "4"  # the last of the two
    assert "key: e-2" in out
    assert '  "task": "email",' in out and '  "args": [\n    "e-2"\n  ],' in out
    assert TRACEBACK in out


def _header_rows(output: str) -> list[tuple[str, ...]]:
    found = []
    for line in output.splitlines():
        cells = tuple(c.strip() for c in line.split("│")[1:-1])
        if len(cells) == 2 and cells[0].startswith(("millstream.", "traceparent")):
            found.append(cells)
    return found


def test_show_by_task_id_and_what_is_not_there(run: Callable[..., Result], shop: Shop) -> None:
    result = run("show", shop.app, "c-2")
    assert result.exit_code == 0, result.output
    assert f"{shop.dlq} 1:0" in result.stdout and "key: c-2" in result.stdout
    assert "c-1" not in result.stdout

    result = run("show", shop.app, "0:99")
    assert result.exit_code == 1
    assert f"{shop.dlq} has no record at 0:99: partition 0 holds offsets 0 to 2" in result.stderr
    result = run("show", shop.app, "7:0")
    assert result.exit_code == 1 and "has no partition 7" in result.stderr
    result = run("show", shop.app, "nobody")
    assert result.exit_code == 1
    assert f"no dead letter of task id 'nobody' in {shop.dlq}" in result.stderr


def test_replay_sends_the_matching_tasks_back_with_rewritten_headers(
    run: Callable[..., Result], shop: Shop, settings: Settings
) -> None:
    result = run("replay", shop.app, "--error-type", "ValueError", "--dry-run")
    assert result.exit_code == 0, result.output
    assert {r[:2] for r in rows(result.stdout)} == {("0", "0"), ("1", "1")}
    assert "would replay 2 task dead letters (dry run: nothing produced)" in result.stdout
    assert record_count(settings, shop.charge_topic) == 0
    assert record_count(settings, shop.email_topic) == 0

    result = run("replay", shop.app, "--error-type", "ValueError")
    assert result.exit_code == 0, result.output
    assert "1 stream dead letters skipped: replay works on tasks" in result.stdout
    assert ("charge", "1") in _two_cells(result.stdout)
    assert ("email", "1") in _two_cells(result.stdout)
    assert "replayed 2 task dead letters" in result.stdout

    charge, email = letters(shop)[0], letters(shop)[4]
    assert read_back(settings, shop.charge_topic) == [
        (b"c-1", orjson.dumps(charge.value), _replayed("c-1", replay=1))
    ]
    assert read_back(settings, shop.email_topic) == [
        (b"e-2", orjson.dumps(email.value), _replayed("e-2", replay=2))
    ]
    assert record_count(settings, shop.dlq) == 5  # replay leaves the dead letters


def _replayed(task_id: str, replay: int) -> Headers:
    """The headers a replay must produce, written out from docs/tasks.md."""
    return [
        ("traceparent", f"00-{task_id}".encode()),
        ("millstream.task.attempts", b"0"),
        ("millstream.task.replay", str(replay).encode()),
    ]


def _two_cells(output: str) -> set[tuple[str, ...]]:
    """The rows of the two-column tables in ``output``."""
    lines = (tuple(c.strip() for c in line.split("│")[1:-1]) for line in output.splitlines())
    return {cells for cells in lines if len(cells) == 2}


def read_back(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None, Headers]]:
    """Every record of ``topic`` (one partition) with its headers as a list, in order."""
    consumer = make_consumer(settings, f"check-{uuid.uuid4().hex}", **{"group.protocol": "classic"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, low)])
        found = []
        deadline = time.monotonic() + 30
        while len(found) < high - low:
            assert time.monotonic() < deadline, f"read {len(found)} of {high - low} from {topic}"
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.append((message.key(), message.value(), list(message.headers() or [])))
        return found
    finally:
        consumer.close()


def test_replay_refuses_when_a_source_topic_is_missing(
    run: Callable[..., Result], shop: Shop, settings: Settings
) -> None:
    delete_topics(settings, [shop.email_topic])
    for dry_run in ([], ["--dry-run"]):
        result = run("replay", shop.app, *dry_run)
        assert result.exit_code == 1
        assert f"nothing replayed: source topics do not exist: {shop.email_topic}" in result.stderr
    assert record_count(settings, shop.charge_topic) == 0


def test_purge_empties_the_dlq(run: Callable[..., Result], shop: Shop, settings: Settings) -> None:
    result = run("purge", shop.app, input="n\n")
    assert result.exit_code == 1 and "nothing deleted" in result.stderr
    assert record_count(settings, shop.dlq) == 5

    result = run("purge", shop.app, "--yes")
    assert result.exit_code == 0, result.output
    assert _two_cells(result.stdout) >= {("0", "3"), ("1", "2")}
    assert "deleted 5 records from" in result.stdout
    consumer = make_consumer(settings, f"check-{uuid.uuid4().hex}")
    try:
        for partition in (0, 1):
            tp = TopicPartition(shop.dlq, partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            assert (partition, low) == (partition, high)
    finally:
        consumer.close()

    result = run("list", shop.app)
    assert result.exit_code == 0, result.output
    assert f"{shop.dlq} is empty: no dead letters" in result.stdout
    result = run("purge", shop.app, "--yes")
    assert result.exit_code == 0 and "is empty: nothing to purge" in result.stdout
