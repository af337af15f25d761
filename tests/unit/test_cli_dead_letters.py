"""``millstream dlq`` without a broker: the header rewrite of a replay, the error-type
and task filters, WHERE parsing, which dead letters a replay takes, and how APP names
an app. tests/integration/test_cli_dlq.py runs the commands on a real cluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from millstream.cli import cli
from millstream.cli.dead_letters import (
    DeadLetter,
    DeadLetterFilter,
    Header,
    Position,
    ReplayPlan,
    error_type_matches,
    parse_where,
    replay_headers,
)
from millstream.cli.dlq import dead_letter_topic, shortened, utc_time

#: A task's dead letter as docs/tasks.md describes it: the record's own headers (a user
#: header, the task headers of its last attempt), then those the worker added.
TASK_HEADERS: list[Header] = [
    ("traceparent", b"00-4bf92f-00f067-01"),
    ("millstream.task.attempts", b"3"),
    ("millstream.task.first_failure", b"1764550000000"),
    ("millstream.task.due", b"1764550004000"),
    ("millstream.task.replay", b"7"),
    ("millstream.task.topic", b"shop-task-charge"),
    ("tenant", None),
    ("millstream.error", b"ValueError: card declined"),
    ("millstream.error.type", b"builtins.ValueError"),
    ("millstream.error.traceback", b"Traceback (most recent call last):\n  ...\n"),
    ("millstream.error.step", b"task(charge)"),
    ("millstream.task.id", b"o-1"),
    ("millstream.task.name", b"charge"),
    ("millstream.task.attempts", b"4"),
    ("millstream.source.topic", b"shop-task-charge"),
    ("millstream.source.partition", b"2"),
    ("millstream.source.offset", b"41"),
]


def dead_letter(headers: list[Header], partition: int = 0, offset: int = 0) -> DeadLetter:
    return DeadLetter(Position(partition, offset), 1764550000000, b"o-1", b"{}", tuple(headers))


def with_headers(**changes: str | None) -> list[Header]:
    """TASK_HEADERS with the named ones (dots as underscores, after ``millstream.``) set
    to a value, or removed when None."""
    names = {f"millstream.{k.replace('_', '.')}": v for k, v in changes.items()}
    kept = [(n, v) for n, v in TASK_HEADERS if n not in names]
    return kept + [(n, v.encode()) for n, v in names.items() if v is not None]


class TestReplayHeaders:
    def test_only_the_records_own_headers_stay_then_attempts_0_and_the_generation(self) -> None:
        assert replay_headers(TASK_HEADERS, 41) == [
            ("traceparent", b"00-4bf92f-00f067-01"),
            ("tenant", None),
            ("millstream.task.attempts", b"0"),
            ("millstream.task.replay", b"42"),
        ]

    def test_every_error_and_source_header_goes_even_ones_not_named_in_the_docs(self) -> None:
        headers: list[Header] = [
            ("millstream.error.extra", b"x"),
            ("millstream.source.leader_epoch", b"3"),
            ("millstream.sourcery", b"kept: not a source.* header"),
            ("x-millstream.error", b"kept: not a millstream header"),
        ]
        assert replay_headers(headers, 0) == [
            ("millstream.sourcery", b"kept: not a source.* header"),
            ("x-millstream.error", b"kept: not a millstream header"),
            ("millstream.task.attempts", b"0"),
            ("millstream.task.replay", b"1"),
        ]

    def test_a_replayed_record_has_one_attempts_and_one_replay_header(self) -> None:
        rewritten = replay_headers(TASK_HEADERS + TASK_HEADERS, 9)
        names = [name for name, _ in rewritten]
        assert names.count("millstream.task.attempts") == 1
        assert names.count("millstream.task.replay") == 1


class TestFilters:
    @pytest.mark.parametrize(
        ("error_type", "wanted", "matches"),
        [
            ("builtins.ValueError", "ValueError", True),
            ("builtins.ValueError", "builtins.ValueError", True),
            ("millstream.errors.TaskTimeout", "TaskTimeout", True),
            ("millstream.errors.TaskTimeout", "errors.TaskTimeout", True),
            ("shop.billing.Card.Declined", "Declined", True),
            ("shop.billing.Card.Declined", "Card.Declined", True),
            ("builtins.ValueError", "Error", False),
            ("builtins.ValueError", "valueerror", False),
            ("builtins.ValueError", "KeyError", False),
            ("builtins.ValueError", "builtins", False),
            ("shop.ValueErrorX", "ValueError", False),
            (None, "ValueError", False),
        ],
    )
    def test_error_type_in_full_or_by_class_name(
        self, error_type: str | None, wanted: str, matches: bool
    ) -> None:
        assert error_type_matches(error_type, wanted) is matches

    def test_task_and_error_type_must_both_match(self) -> None:
        charge = dead_letter(TASK_HEADERS)
        timeout = dead_letter(with_headers(error_type="millstream.errors.TaskTimeout"))
        stream = dead_letter(with_headers(task_name=None, task_id=None))
        assert DeadLetterFilter().matches(stream)
        assert DeadLetterFilter(task="charge").matches(charge)
        assert not DeadLetterFilter(task="charge").matches(stream)
        assert not DeadLetterFilter(task="email").matches(charge)
        assert DeadLetterFilter(task="charge", error_type="ValueError").matches(charge)
        assert not DeadLetterFilter(task="charge", error_type="ValueError").matches(timeout)
        assert DeadLetterFilter(error_type="ValueError").matches(stream)

    def test_a_repeated_header_reads_as_the_last_one(self) -> None:
        letter = dead_letter(TASK_HEADERS)
        assert letter.header("millstream.task.attempts") == "4"
        assert letter.header("tenant") is None
        assert letter.header("absent") is None
        assert (letter.task_name, letter.task_id, letter.source_topic) == (
            "charge",
            "o-1",
            "shop-task-charge",
        )


class TestWhere:
    @pytest.mark.parametrize(
        ("where", "parsed"),
        [
            ("0:42", Position(0, 42)),
            (" 12:0 ", Position(12, 0)),
            ("5f0c9e2a7b", "5f0c9e2a7b"),
            ("o-1", "o-1"),
            ("order:17", "order:17"),
            ("a1:2", "a1:2"),
        ],
    )
    def test_a_position_or_a_task_id(self, where: str, parsed: Position | str) -> None:
        assert parse_where(where) == parsed

    @pytest.mark.parametrize(
        ("where", "message"),
        [
            ("", "empty: give PARTITION:OFFSET"),
            ("   ", "empty: give PARTITION:OFFSET"),
            ("3:", "offset '' is not a non-negative integer"),
            ("3:x", "offset 'x' is not a non-negative integer"),
            ("3:-1", "offset '-1' is not a non-negative integer"),
            ("3:1:2", "offset '1:2' is not a non-negative integer"),
            ("-1:4", "partition -1 is negative"),
        ],
    )
    def test_bad_input_says_what_is_wrong(self, where: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            parse_where(where)

    def test_the_command_reports_a_bad_where_as_a_usage_error_before_any_request(self) -> None:
        # Port 1 answers nothing: a request would fail with "no Kafka broker answered".
        env = {"MILLSTREAM_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "200"}
        result = CliRunner().invoke(cli, ["dlq", "show", "shop", "3:x"], env=env)
        assert result.exit_code == 2
        assert "offset 'x' is not a non-negative integer" in result.stderr
        assert "Traceback" not in result.output


@dataclass
class Letters:
    charge: DeadLetter
    stream: DeadLetter
    unsourced: DeadLetter
    email_timeout: DeadLetter


@pytest.fixture
def letters() -> Letters:
    return Letters(
        charge=dead_letter(TASK_HEADERS, 0, 0),
        stream=dead_letter(with_headers(task_name=None, task_id=None), 0, 1),
        unsourced=dead_letter(with_headers(source_topic=None), 1, 0),
        email_timeout=dead_letter(
            with_headers(task_name="email", error_type="millstream.errors.TaskTimeout"), 1, 1
        ),
    )


class TestReplayPlan:
    def test_tasks_that_match_are_replayed_streams_and_unsourced_ones_counted(
        self, letters: Letters
    ) -> None:
        all_of_them = [letters.charge, letters.stream, letters.unsourced, letters.email_timeout]
        plan = ReplayPlan.of(all_of_them, DeadLetterFilter())
        assert plan.tasks == [letters.charge, letters.email_timeout]
        assert plan.streams_skipped == 1
        assert plan.unsourced == [Position(1, 0)]
        assert plan.source_topics() == {"shop-task-charge"}

    def test_the_filter_chooses_before_anything_is_counted(self, letters: Letters) -> None:
        all_of_them = [letters.charge, letters.stream, letters.unsourced, letters.email_timeout]
        plan = ReplayPlan.of(all_of_them, DeadLetterFilter(error_type="TaskTimeout"))
        assert (plan.tasks, plan.streams_skipped, plan.unsourced) == (
            [letters.email_timeout],
            0,
            [],
        )
        plan = ReplayPlan.of(all_of_them, DeadLetterFilter(task="charge"))
        assert (plan.tasks, plan.streams_skipped) == ([letters.charge], 0)


class TestApp:
    def test_an_app_id_names_its_dlq_topic(self) -> None:
        assert dead_letter_topic("shop", "127.0.0.1:1").name == "shop-dlq"

    def test_module_attr_loads_the_app_and_takes_its_id_and_settings(self, tmp_path: Path) -> None:
        source = "from millstream import App\napp = App('billing', bootstrap_servers='h:9')\n"
        (tmp_path / "billing_app.py").write_text(source)
        topic = dead_letter_topic(f"{tmp_path}/billing_app.py:app", None)
        assert (topic.name, topic.settings.bootstrap_servers) == ("billing-dlq", "h:9")
        topic = dead_letter_topic(f"{tmp_path}/billing_app.py:app", "other:9092")
        assert topic.settings.bootstrap_servers == "other:9092"

    def test_a_reference_that_is_not_an_app_is_one_red_line(self, tmp_path: Path) -> None:
        (tmp_path / "not_an_app.py").write_text("app = 42\n")
        result = CliRunner().invoke(cli, ["dlq", "list", f"{tmp_path}/not_an_app.py:app"])
        assert result.exit_code == 1
        assert "is int, not a millstream App" in result.stderr
        assert "Traceback" not in result.output


def test_rows_show_errors_on_one_short_line_and_times_in_utc() -> None:
    assert shortened("ValueError: card\n  declined", 60) == "ValueError: card declined"
    assert shortened("x" * 100, 10) == "x" * 9 + "…"
    assert shortened(None, 10) == "-"
    assert utc_time(1764550000123) == "2025-12-01 00:46:40"
    assert utc_time(None) == "-"


def test_every_command_explains_itself() -> None:
    result = CliRunner().invoke(cli, ["dlq", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for command in ("list", "show", "replay", "purge"):
        assert command in result.stdout
    for command, phrase in [
        ("list", "--error-type"),
        ("show", "PARTITION:OFFSET"),
        ("replay", "--dry-run"),
        ("purge", "--yes"),
    ]:
        result = CliRunner().invoke(cli, ["dlq", command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and phrase in result.stdout
