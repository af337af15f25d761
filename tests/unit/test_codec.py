"""The state codec (processors/state/codec.py): how store keys and values become the
bytes of changelogs and RocksDB, and come back equal."""

from __future__ import annotations

from typing import Any

import pytest

from millstream.errors import SerializationError
from millstream.processors.state.changelog import MARKER_KEY
from millstream.processors.state.codec import Codec
from millstream.processors.state.manager import StoreSpec


@pytest.mark.parametrize("key", ["card-1", "", "ünï", 42, -7, 3.5, True, None])
def test_scalar_keys_round_trip(key: Any) -> None:
    codec = Codec()
    assert codec.decode_key(codec.encode_key(key)) == key


@pytest.mark.parametrize(
    "value",
    [
        0,
        "text",
        None,
        [1, 2, 3],
        {"start": 1_767_225_600_000, "end": 1_767_225_610_000, "value": 3},
        {"nested": {"list": [1.5, None, "x"]}},
        [[1_000, 1_000, 5], [2_000, 2_500, None]],
    ],
)
def test_values_round_trip(value: Any) -> None:
    codec = Codec()
    assert codec.decode_value(codec.encode_value(value)) == value


def test_window_keys_come_back_as_hashable_tuples() -> None:
    codec = StoreSpec("w", "in", tuple_keys=True).codec()
    key = ("card-1", 1_767_225_600_000, 1_767_225_610_000)
    decoded = codec.decode_key(codec.encode_key(key))
    assert decoded == key
    assert isinstance(decoded, tuple)
    assert {decoded: 1}[key] == 1, "a decoded key finds the entry of the original one"


def test_scalar_keys_stay_scalar_in_a_window_codec() -> None:
    codec = Codec(tuple_keys=True)
    assert codec.decode_key(codec.encode_key("card-1")) == "card-1"
    assert codec.decode_key(codec.encode_key(7)) == 7


def test_without_tuple_keys_arrays_stay_lists() -> None:
    codec = StoreSpec("table", "in").codec()
    assert codec.decode_key(codec.encode_key(("a", 1))) == ["a", 1]


def test_the_bytes_of_a_key_are_stable() -> None:
    """Compaction keeps the latest record per key *bytes*: one key must always encode
    to the same bytes, or a compacted changelog would keep stale entries."""
    codec = Codec(tuple_keys=True)
    key = ("card-1", 0, 10_000)
    assert codec.encode_key(key) == b'["card-1",0,10000]'
    assert codec.encode_key(codec.decode_key(codec.encode_key(key))) == codec.encode_key(key)
    assert codec.encode_key(["card-1", 0, 10_000]) == codec.encode_key(key)


def test_store_keys_never_collide_with_the_position_marker() -> None:
    codec = Codec(tuple_keys=True)
    for key in ["\x00millstream.marker", "", ("\x00millstream.marker",), 0]:
        assert codec.encode_key(key) != MARKER_KEY


@pytest.mark.parametrize("data", [MARKER_KEY, b"{not json", b"", b"\xff\xfe"])
def test_undecodable_bytes_raise_rather_than_decode_to_something(data: bytes) -> None:
    codec = Codec(tuple_keys=True)
    with pytest.raises((ValueError, SerializationError)):
        codec.decode_key(data)
    with pytest.raises((ValueError, SerializationError)):
        codec.decode_value(data)


def test_undecodable_bytes_are_a_serialization_error() -> None:
    with pytest.raises(SerializationError):
        Codec().decode_value(b"{not json")


@pytest.mark.parametrize("value", [{1, 2}, object(), 2**70])
def test_values_that_json_cannot_hold_raise(value: Any) -> None:
    with pytest.raises((TypeError, SerializationError)):
        Codec().encode_value(value)


def test_a_window_key_with_a_compound_group_key_round_trips() -> None:
    codec = Codec(tuple_keys=True)
    key = (("m-1", "EUR"), 0, 10_000)
    decoded = codec.decode_key(codec.encode_key(key))
    assert decoded == key
    assert hash(decoded) == hash(key)
