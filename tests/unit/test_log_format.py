"""Log lines as JSON: the fields come from context variables and ``extra``, not the text."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator

import orjson
import pytest

from millstream.logs import (
    ContextFilter,
    JsonFormatter,
    configure_logging,
    log_app,
    log_partition,
    reset_partition,
    set_partition,
)


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """A logger 'test.logs' writing JSON to a buffer through the filter, app id 'shop'."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(ContextFilter("shop", worker_index=3))
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)


def entries(buffer: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_line_is_one_object_with_the_fixed_fields(lines: io.StringIO) -> None:
    logging.getLogger("test.logs").info("hello %s", "world")
    [entry] = entries(lines)
    assert entry["message"] == "hello world"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "test.logs"
    assert entry["app_id"] == "shop"
    assert entry["worker_index"] == 3
    pid = entry["pid"]
    assert isinstance(pid, int) and pid > 0
    assert entry["worker_id"] == f"shop-{pid}"
    assert str(entry["time"]).endswith("Z") and "T" in str(entry["time"])
    assert "partition" not in entry and "topic" not in entry


def test_the_partition_being_processed_is_on_every_line_within_it(lines: io.StringIO) -> None:
    log = logging.getLogger("test.logs")
    with log_partition("orders", 4):
        log.warning("inside")
    token = set_partition("payments", 1)
    log.warning("hot path")
    reset_partition(token)
    log.warning("outside")
    inside, hot, outside = entries(lines)
    assert (inside["topic"], inside["partition"]) == ("orders", 4)
    assert (hot["topic"], hot["partition"]) == ("payments", 1)
    assert "partition" not in outside


def test_extra_fields_win_and_are_kept(lines: io.StringIO) -> None:
    with log_partition("orders", 4):
        logging.getLogger("test.logs").info(
            "x", extra={"topic": "dlq", "partition": 9, "offset": 17}
        )
    [entry] = entries(lines)
    assert (entry["topic"], entry["partition"], entry["offset"]) == ("dlq", 9, 17)


def test_the_app_of_the_thread_wins_over_the_process_default(lines: io.StringIO) -> None:
    def run() -> None:
        with log_app("billing"):
            logging.getLogger("test.logs").info("from the worker thread")

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    logging.getLogger("test.logs").info("from the main thread")
    worker, main = entries(lines)
    assert worker["app_id"] == "billing"
    assert main["app_id"] == "shop"


def test_exceptions_are_one_field_and_the_line_stays_one_line(lines: io.StringIO) -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("test.logs").exception("failed")
    assert len(lines.getvalue().splitlines()) == 1
    [entry] = entries(lines)
    assert "ValueError: bad" in str(entry["exception"])


def test_values_json_cannot_hold_are_written_as_text(lines: io.StringIO) -> None:
    logging.getLogger("test.logs").info("x", extra={"thing": object()})
    [entry] = entries(lines)
    assert str(entry["thing"]).startswith("<object object")


def test_configure_logging_replaces_handlers_and_keeps_text_the_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        configure_logging("INFO", "json", "shop")
        configure_logging("INFO", "json", "shop")
        logging.getLogger("test.configure").info("once")
        [line] = capsys.readouterr().err.splitlines()
        assert orjson.loads(line)["app_id"] == "shop"
        configure_logging("INFO")
        logging.getLogger("test.configure").info("as text")
        text = capsys.readouterr().err
        assert "INFO    test.configure" in text and "as text" in text
        assert not text.startswith("{")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def test_the_app_of_a_block_ends_with_it(lines: io.StringIO) -> None:
    with log_app("billing"):
        logging.getLogger("test.logs").info("inside")
    logging.getLogger("test.logs").info("after")
    inside, after = entries(lines)
    assert (inside["app_id"], after["app_id"]) == ("billing", "shop")
