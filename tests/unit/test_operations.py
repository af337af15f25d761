"""Stateless steps (processors/operations.py), run through the test driver: what each
step does to keys, values and timestamps, how branches share records, and where a
record goes when a step or a serde fails for it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from millstream import App
from millstream.processors.stream import Stream
from millstream.sinks import Sink, SinkContext, SinkRecord
from millstream.testing import TestDriver

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class RecordingSink(Sink):
    """Keeps every batch it is handed, and counts flushes."""

    def __init__(self) -> None:
        self.batches: list[list[SinkRecord]] = []
        self.flushes = 0
        self.context: SinkContext | None = None
        self.closed = False

    def open(self, context: SinkContext) -> None:
        self.context = context

    def write(self, records: Sequence[SinkRecord]) -> None:
        self.batches.append(list(records))

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True


def pipeline(build: Callable[[Stream], Stream], **out_serdes: Any) -> tuple[App, str]:
    """An app reading ``in`` and writing what ``build`` makes of it to ``out``."""
    app = App("ops")
    source = app.topic("in")
    build(app.stream(source)).to(app.topic("out", **out_serdes))
    return app, "out"


def run(app: App, values: list[Any], key: str = "k") -> TestDriver:
    driver = TestDriver(app, start_ms=START)
    for i, value in enumerate(values):
        driver.send("in", value, key=key, timestamp=START + i)
    return driver


def test_map_replaces_the_value_and_keeps_key_and_timestamp() -> None:
    app, out = pipeline(lambda s: s.map(lambda v: {"cents": v["amount"] * 100}))
    with run(app, [{"amount": 2}, {"amount": 5}], key="c-1") as driver:
        assert [(r.key, r.value, r.timestamp) for r in driver.read(out)] == [
            ("c-1", {"cents": 200}, START),
            ("c-1", {"cents": 500}, START + 1),
        ]


def test_filter_keeps_the_records_its_function_finds_true() -> None:
    app, out = pipeline(lambda s: s.filter(lambda v: v["n"] % 2))
    with run(app, [{"n": n} for n in range(6)]) as driver:
        assert [r.value["n"] for r in driver.read(out)] == [1, 3, 5]


def test_flat_map_fans_out_under_the_same_key_and_timestamp() -> None:
    app, out = pipeline(lambda s: s.flat_map(lambda v: [{"item": i} for i in v["items"]]))
    with run(app, [{"items": ["a", "b", "c"]}, {"items": []}, {"items": ["d"]}]) as driver:
        assert [(r.key, r.value["item"], r.timestamp) for r in driver.read(out)] == [
            ("k", "a", START),
            ("k", "b", START),
            ("k", "c", START),
            ("k", "d", START + 2),
        ]


def test_peek_sees_every_value_and_passes_it_unchanged() -> None:
    seen: list[Any] = []
    app, out = pipeline(lambda s: s.peek(seen.append))
    with run(app, [{"n": 1}, {"n": 2}]) as driver:
        assert seen == [{"n": 1}, {"n": 2}]
        assert [r.value for r in driver.read(out)] == [{"n": 1}, {"n": 2}]


def test_rekey_takes_the_key_from_the_value_without_repartitioning() -> None:
    app, out = pipeline(lambda s: s.rekey(lambda v: v["user"]))
    with run(app, [{"user": "u-1"}, {"user": "u-2"}], key="session") as driver:
        assert [(r.key, r.value) for r in driver.read(out)] == [
            ("u-1", {"user": "u-1"}),
            ("u-2", {"user": "u-2"}),
        ]
    assert app.topology.repartition_topics() == set()


def test_to_writes_with_the_topics_serdes_and_the_stream_goes_on() -> None:
    app = App("ops")
    source = app.topic("in")
    counts = app.topic("counts", key_serde="int", value_serde="str")
    doubled = app.topic("doubled", key_serde="int", value_serde="int")
    (
        app.stream(source)
        .rekey(lambda v: v["id"])
        .map(lambda v: v["n"])
        .to(counts)
        .map(lambda n: n * 2)
        .to(doubled)
    )
    with run(app, [{"id": 7, "n": 21}]) as driver:
        assert [(r.key, r.value) for r in driver.read(counts)] == [(7, "21")]
        assert [(r.key, r.value) for r in driver.read(doubled)] == [(7, 42)]


def test_a_record_written_on_the_slow_path_is_counted_once() -> None:
    app, out = pipeline(lambda s: s.map(lambda v: v["n"]), value_serde="str")
    with run(app, [{"n": 21}]) as driver:  # str.encode(21) raises: serialize() writes it
        assert [r.value for r in driver.read(out)] == ["21"]
        assert driver.stats.records_out == 1


def test_a_sink_gets_each_batch_with_where_its_records_came_from() -> None:
    app = App("ops")
    sink = RecordingSink()
    app.stream(app.topic("in", partitions=1)).map(lambda v: v["n"]).sink(sink)
    driver = run(app, [{"n": 1}, {"n": 2}], key="k")
    assert sink.context is not None and sink.context.app_id == "ops"
    assert [[r[:6] for r in batch] for batch in sink.batches] == [
        [SinkRecord("k", 1, START, "in", 0, 0)[:6]],
        [SinkRecord("k", 2, START + 1, "in", 0, 1)[:6]],
    ]
    # Each record carries the message it came from, for the dead-letter topic.
    assert [batch[0].source.value() for batch in sink.batches] == [b'{"n":1}', b'{"n":2}']  # type: ignore[union-attr]
    assert sink.flushes >= 2, "flushed at every checkpoint"
    assert not sink.closed
    driver.close()
    assert sink.closed


def test_branches_each_get_every_record_and_do_not_see_each_others_changes() -> None:
    app = App("ops")
    source = app.topic("in")
    stream = app.stream(source)
    firsts: list[Any] = []
    seconds: list[Any] = []
    stream.peek(firsts.append).map(lambda v: {**v, "tagged": True}).to(app.topic("tagged"))
    stream.peek(seconds.append).to(app.topic("plain"))
    stream.filter(lambda v: v["n"] > 1).to(app.topic("big"))
    with run(app, [{"n": 1}, {"n": 2}]) as driver:
        assert [r.value for r in driver.read("tagged")] == [
            {"n": 1, "tagged": True},
            {"n": 2, "tagged": True},
        ]
        assert [r.value for r in driver.read("plain")] == [{"n": 1}, {"n": 2}]
        assert [r.value for r in driver.read("big")] == [{"n": 2}]
    assert firsts == seconds == [{"n": 1}, {"n": 2}]
    assert all(a is b for a, b in zip(firsts, seconds, strict=True)), "shared, not copied"


class Explode:
    """Raises for the value ``{"n": 2}``; otherwise returns ``result(value)``."""

    def __init__(self, result: Callable[[Any], Any]) -> None:
        self.result = result

    def __call__(self, value: Any) -> Any:
        if value["n"] == 2:
            raise ValueError("no twos")
        return self.result(value)


STEPS: dict[str, Callable[[Stream], Stream]] = {
    "map": lambda s: s.map(Explode(lambda v: v)),
    "filter": lambda s: s.filter(Explode(lambda v: True)),
    "flat_map": lambda s: s.flat_map(Explode(lambda v: [v])),
    "peek": lambda s: s.peek(Explode(lambda v: None)),
    "rekey": lambda s: s.rekey(Explode(lambda v: "k")),
}


@pytest.mark.parametrize("kind", STEPS)
def test_a_raising_function_sends_only_its_record_to_the_dead_letters(kind: str) -> None:
    app, out = pipeline(STEPS[kind])
    driver = TestDriver(app, start_ms=START)
    for n in (1, 2, 3):
        driver.send("in", {"n": n}, key="k", timestamp=START + n, headers=[("trace", f"t-{n}")])
    with driver:
        assert [r.value for r in driver.read(out)] == [{"n": 1}, {"n": 3}]
        dead = driver.read("ops-dlq")
        assert [(r.key, r.value, r.timestamp) for r in dead] == [(b"k", b'{"n":2}', START + 2)]
        headers = dead[0].headers
        assert headers["millstream.error.step"] == f"{kind}(Explode)"
        assert headers["millstream.error"] == "ValueError: no twos"
        assert headers["millstream.error.type"] == "builtins.ValueError"
        assert headers["millstream.source.topic"] == "in"
        assert headers["millstream.source.offset"] == "1"
        assert headers["trace"] == "t-2"
        assert driver.stats.dead_letters == 1


def test_a_record_whose_fanned_out_row_fails_goes_to_the_dead_letters_once() -> None:
    app, out = pipeline(
        lambda s: s.flat_map(lambda v: v["xs"]).map(lambda x: {"inverse": 12 // (x - 2)})
    )
    with run(app, [{"xs": [1, 2, 3]}, {"xs": [4]}]) as driver:
        assert [r.value["inverse"] for r in driver.read(out)] == [-12, 12, 6]
        dead = driver.read("ops-dlq")
        assert [r.value for r in dead] == [b'{"xs":[1,2,3]}']
        assert dead[0].headers["millstream.error.type"] == "builtins.ZeroDivisionError"


def _bad_value(bad: Any) -> Callable[[Stream], Stream]:
    return lambda s: s.map(lambda v: bad if v["n"] == 2 else v["n"])


OUTPUTS: dict[str, tuple[dict[str, str], Callable[[Stream], Stream]]] = {
    "int-value": ({"value_serde": "int"}, _bad_value("seven")),
    "json-value": ({"value_serde": "json"}, _bad_value({1, 2})),
    "int-key": (
        {"key_serde": "int"},
        lambda s: s.rekey(lambda v: "two" if v["n"] == 2 else v["n"]).map(lambda v: v["n"]),
    ),
}


@pytest.mark.parametrize("case", OUTPUTS)
def test_a_record_the_output_serdes_cannot_write_goes_to_the_dead_letters(case: str) -> None:
    serdes, build = OUTPUTS[case]
    app, out = pipeline(build, **serdes)
    with run(app, [{"n": 1}, {"n": 2}, {"n": 3}]) as driver:
        assert [r.value for r in driver.read(out)] == [1, 3]
        dead = driver.read("ops-dlq")
        assert [r.value for r in dead] == [b'{"n":2}']
        assert dead[0].headers["millstream.error.step"] == "to(out)"
        assert dead[0].headers["millstream.error.type"] == "millstream.errors.SerializationError"
        assert driver.stats.records_out == 2
