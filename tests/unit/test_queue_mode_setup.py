"""Declaring queue-mode tasks, and the share-group settings derived from them (no broker)."""

from __future__ import annotations

from typing import Any

import pytest

from millstream import App
from millstream.config import load_settings
from millstream.errors import ConfigurationError
from millstream.processors.tasks.queue_completions import done_topic
from millstream.processors.tasks.queue_group import (
    check_timeouts,
    share_group,
    wanted_delivery_limit,
)


def _app(tmp_path: Any, **options: Any) -> App:
    # Nothing here may reach a broker: this one does not exist.
    settings = load_settings(local_dir=tmp_path, bootstrap_servers="127.0.0.1:9")
    return App("shop", settings=settings, **options)


def test_the_mode_comes_from_the_task_or_else_the_app(tmp_path: Any) -> None:
    app = _app(tmp_path, task_mode="queue")

    @app.task
    def queued() -> None: ...

    @app.task(mode="ordered")
    def ordered() -> None: ...

    assert (queued.mode, ordered.mode) == ("queue", "ordered")
    assert _app(tmp_path).task_mode == "ordered"


def test_a_queue_task_topic_is_not_a_stream_source_and_has_a_completion_topic(
    tmp_path: Any,
) -> None:
    app = _app(tmp_path)

    @app.task(mode="queue", partitions=1)
    def resize() -> None: ...

    assert resize.topic not in app.topology.sources
    assert app.topology.topics[resize.topic].partitions == 1
    done = app.topology.topics[done_topic(resize.topic)]
    assert done.config["cleanup.policy"] == "compact,delete"
    assert share_group("shop") == "shop-tasks"


def test_modes_are_validated(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="'task_mode'"):
        _app(tmp_path, task_mode="fifo")
    app = _app(tmp_path)
    with pytest.raises(ConfigurationError, match="'mode'"):
        app.task(name="t", mode="fifo")(lambda: None)  # type: ignore[call-overload]


def test_a_topic_is_read_in_one_mode_only(tmp_path: Any) -> None:
    app = _app(tmp_path)

    @app.task(topic="shop-work", mode="queue")
    def first() -> None: ...

    @app.task(topic="shop-work", mode="queue")
    def second() -> None: ...  # queue tasks may share a topic

    with pytest.raises(ConfigurationError, match="'topic'"):

        @app.task(topic="shop-work", mode="ordered")
        def third() -> None: ...


def test_the_delivery_count_limit_is_retries_plus_two_within_the_brokers_range(
    tmp_path: Any,
) -> None:
    app = _app(tmp_path, task_mode="queue")
    tasks = [app.task(name=f"t{r}", retries=r)(lambda: None) for r in (0, 3)]
    assert wanted_delivery_limit(tasks) == 5
    assert wanted_delivery_limit(tasks[:1]) == 2
    many = app.task(name="many", retries=20)(lambda: None)
    assert wanted_delivery_limit([many]) == 10


def test_a_timeout_must_end_before_the_lock(tmp_path: Any) -> None:
    app = _app(tmp_path, task_mode="queue")
    fits = app.task(name="fits", timeout=28)(lambda: None)
    long = app.task(name="long", timeout=29)(lambda: None)
    check_timeouts([fits], 30.0, "shop-tasks")
    with pytest.raises(ConfigurationError, match=r"share\.record\.lock\.duration\.ms"):
        check_timeouts([fits, long], 30.0, "shop-tasks")


def test_a_broker_without_share_groups_is_told_apart() -> None:
    from confluent_kafka import KafkaError, KafkaException

    from millstream.kafka import share_groups_unsupported

    # What the share consumer raises when the broker's share.version is 0 (Kafka 4.3).
    unsupported = KafkaException(KafkaError(KafkaError.UNSUPPORTED_VERSION, fatal=True))
    assert share_groups_unsupported(unsupported)
    assert not share_groups_unsupported(KafkaException(KafkaError(KafkaError.REQUEST_TIMED_OUT)))
    assert not share_groups_unsupported(ValueError("no"))
