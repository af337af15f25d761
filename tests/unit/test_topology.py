"""The topology (processors/topology.py): the topics, stores and internal topics an
application's declarations add up to, before any worker runs them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from millstream import App, windows
from millstream.errors import ConfigurationError
from millstream.processors.handlers import ProcessorContext, Record
from millstream.processors.state.changelog import CHANGELOG_CONFIG
from millstream.processors.state.manager import StoreSpec
from millstream.processors.topology import Topology
from millstream.sinks import Sink, SinkRecord
from millstream.topics import declare_topic

TEN_SECONDS = windows.Tumbling(timedelta(seconds=10))


class NullSink(Sink):
    def write(self, records: Sequence[SinkRecord]) -> None:
        pass

    def flush(self) -> None:
        pass


@pytest.fixture
def app() -> App:
    return App("shop")


# -- declared topics -------------------------------------------------------------------


def test_a_topic_declared_twice_with_other_partitions_is_a_configuration_error(
    app: App,
) -> None:
    app.topic("orders", partitions=3)
    with pytest.raises(ConfigurationError) as caught:
        app.topic("orders", partitions=4)
    assert caught.value.setting == "partitions"
    assert "'orders'" in caught.value.problem
    assert "3 and 4" in caught.value.problem
    assert app.topology.topics["orders"].partitions == 3, "the first declaration stands"


def test_declaring_the_same_topic_again_returns_the_first_declaration(app: App) -> None:
    first = app.topic("orders", partitions=3, value_serde="str")
    assert app.topic("orders", partitions=3) is first
    assert app.topic("orders") is first, "no count means whatever the topic has"


def test_a_count_given_later_completes_a_declaration_without_one(app: App) -> None:
    app.stream("orders")
    counted = app.topic("orders", partitions=6)
    assert app.topology.topics["orders"] is counted
    assert counted.partitions == 6


@pytest.mark.parametrize("name", ["", "with space", "a/b", ".", "..", "x" * 250])
def test_an_illegal_topic_name_is_a_configuration_error(name: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        declare_topic(name)
    assert caught.value.setting == "topic"


def test_a_topic_needs_a_partition(app: App) -> None:
    with pytest.raises(ConfigurationError) as caught:
        app.topic("orders", partitions=0)
    assert caught.value.setting == "partitions"


def test_only_topics_with_a_count_have_a_creation_spec(app: App) -> None:
    assert app.topic("existing").spec() is None
    spec = app.topic("created", partitions=2, config={"retention.ms": "1000"}).spec()
    assert spec is not None
    assert (spec.name, spec.partitions) == ("created", 2)


# -- streams, outputs and sinks ----------------------------------------------------------


def test_each_stream_of_a_topic_is_one_more_root(app: App) -> None:
    orders = app.topic("orders")
    app.stream(orders).to(app.topic("a"))
    app.stream("orders").to(app.topic("b"))
    roots = app.topology.sources["orders"]
    assert [root.name for root in roots] == ["source(orders)", "source(orders)"]
    assert roots[0] is not roots[1]


def test_outputs_and_sinks_are_listed_once(app: App) -> None:
    orders, out = app.topic("orders"), app.topic("out")
    sink = NullSink()
    stream = app.stream(orders)
    stream.to(out)
    stream.map(lambda v: v).to(out)
    stream.sink(sink)
    stream.filter(bool).sink(sink)
    assert app.topology.outputs == [out]
    assert app.topology.sinks == [sink]


def test_to_and_sink_refuse_what_is_not_a_topic_or_a_sink(app: App) -> None:
    stream = app.stream(app.topic("orders"))
    with pytest.raises(TypeError, match=r"app\.topic"):
        stream.to("out")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not list"):
        stream.sink([])  # type: ignore[arg-type]


# -- internal topics ---------------------------------------------------------------------


def test_a_repartition_topic_is_named_after_the_app_and_follows_its_source(app: App) -> None:
    payments = app.topic("payments", partitions=3)
    app.stream(payments).group_by(lambda p: p["merchant"], name="by-merchant")
    name = "shop-by-merchant-repartition"
    topic = app.topology.topics[name]
    assert topic.partitions is None
    assert app.topology.partitions_like[name] == "payments"
    assert (topic.key_serde.name, topic.value_serde.name) == ("json-group-key", "json")
    assert topic.config == {"retention.ms": "-1"}, "no time-based deletion of unread records"
    assert app.topology.repartition_topics() == {name}
    assert [root.name for root in app.topology.sources[name]] == [f"source({name})"]


def test_a_repartition_topic_with_its_own_partition_count(app: App) -> None:
    app.stream(app.topic("payments")).group_by(lambda p: p["m"], name="by-m", partitions=12)
    topic = app.topology.topics["shop-by-m-repartition"]
    assert topic.partitions == 12
    assert "shop-by-m-repartition" not in app.topology.partitions_like
    assert "shop-by-m-repartition" not in app.topology.internal_topics()


def test_the_default_repartition_name(app: App) -> None:
    app.stream(app.topic("payments")).group_by(lambda p: p["m"])
    assert "shop-group-by-repartition" in app.topology.repartition_topics()


def test_names_that_clash_get_a_numbered_suffix(app: App) -> None:
    stream = app.stream(app.topic("payments"))
    stream.group_by(lambda p: p["a"], name="by")
    stream.group_by(lambda p: p["b"], name="by")
    stream.group_by(lambda p: p["c"], name="by")
    assert app.topology.repartition_topics() == {
        "shop-by-repartition",
        "shop-by-2-repartition",
        "shop-by-3-repartition",
    }
    topology = Topology("t")
    assert [topology.unique_name("x") for _ in range(3)] == ["x", "x-2", "x-3"]
    assert topology.unique_name("x-2") == "x-2-2"


def test_a_window_store_has_a_changelog_partitioned_like_its_source(app: App) -> None:
    events = app.topic("events", partitions=4)
    app.stream(events).group_by_key().window(TEN_SECONDS, name="counts").count()
    changelog = app.topology.topics["shop-counts-changelog"]
    assert changelog.partitions is None
    assert changelog.config == CHANGELOG_CONFIG
    assert changelog.config["cleanup.policy"] == "compact"
    assert app.topology.partitions_like["shop-counts-changelog"] == "events"


def test_store_specs_of_windows_and_tables(app: App) -> None:
    payments = app.topic("payments", partitions=2)
    spent = app.table("spent", backend="rocksdb")
    grouped = app.stream(payments).group_by(lambda p: p["m"], name="by-m")
    grouped.window(TEN_SECONDS, name="w", backend="rocksdb").sum(lambda p: p["amount"])
    app.stream(payments).group_by_key().window(windows.Session(timedelta(seconds=5))).count()

    @app.processor(payments, tables=[spent])
    def track(record: Record, ctx: ProcessorContext) -> None:
        pass

    assert app.topology.store_specs() == [
        StoreSpec("w", "shop-by-m-repartition", "rocksdb", tuple_keys=True),
        StoreSpec("session-window", "payments", "memory", tuple_keys=True),
        StoreSpec("spent", "payments", "rocksdb", tuple_keys=False),
    ]
    assert {step.name for step in app.topology.stateful_steps("payments")} == {
        "window(session:session-window)",
        "processor(test_store_specs_of_windows_and_tables.<locals>.track)",
    }


def test_store_names_are_unique_across_windows_and_tables(app: App) -> None:
    events = app.topic("events")
    app.table("counts")
    grouped = app.stream(events).group_by_key()
    grouped.window(TEN_SECONDS, name="counts").count()
    grouped.window(TEN_SECONDS, name="counts").count()
    grouped.window(TEN_SECONDS).count()
    grouped.window(TEN_SECONDS).count()
    names = [spec.name for spec in app.topology.store_specs()]
    assert names == ["counts-2", "counts-3", "tumbling-window", "tumbling-window-2"]


def test_internal_topics_are_the_derived_ones_and_the_dead_letters(app: App) -> None:
    payments = app.topic("payments", partitions=2)
    app.stream(payments).group_by(lambda p: p["m"], name="by-m").window(
        TEN_SECONDS, name="w"
    ).count().to(app.topic("out"))
    assert app.topology.internal_topics() == {
        "shop-by-m-repartition",
        "shop-w-changelog",
        "shop-dlq",
        "shop-late",
    }
    assert app.topology.partitions_like["shop-w-changelog"] == "shop-by-m-repartition"
    assert (app.topology.dlq_topic, app.topology.late_topic) == ("shop-dlq", "shop-late")


def test_a_table_used_by_two_topics_is_a_configuration_error(app: App) -> None:
    spent = app.table("spent")

    @app.processor(app.topic("a"), tables=[spent])
    def first(record: Record, ctx: ProcessorContext) -> None:
        pass

    with pytest.raises(ConfigurationError, match="partitioned like 'a', not 'b'"):

        @app.processor(app.topic("b"), tables=[spent])
        def second(record: Record, ctx: ProcessorContext) -> None:
            pass
