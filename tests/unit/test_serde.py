"""Serdes (millstream/serde.py): round trips, the bytes they write, the errors they raise,
and the hot-path shortcuts that must never disagree with the full methods."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from millstream import App
from millstream.errors import ConfigurationError, SerializationError
from millstream.serde import (
    BytesSerde,
    IntSerde,
    JsonSerde,
    PydanticSerde,
    Serde,
    StrSerde,
    fast_deserializer,
    fast_serializer,
    resolve_serde,
)
from millstream.testing import TestDriver


class Order(BaseModel):
    id: int
    amount: float


SERDES: list[Serde] = [JsonSerde(), StrSerde(), BytesSerde(), IntSerde(), PydanticSerde(Order)]


@pytest.mark.parametrize("serde", SERDES, ids=lambda s: s.name)
def test_none_passes_through_both_ways(serde: Serde) -> None:
    assert serde.serialize(None) is None
    assert serde.deserialize(None) is None


@pytest.mark.parametrize(
    "value",
    [{"id": 1, "tags": ["a", "b"], "nested": {"x": None}}, [1, 2.5, "three"], "text", 0, True],
)
def test_json_round_trips(value: Any) -> None:
    serde = JsonSerde()
    data = serde.serialize(value)
    assert isinstance(data, bytes)
    assert serde.deserialize(data) == value


def test_json_writes_compact_utf8_and_datetimes_as_iso_strings() -> None:
    serde = JsonSerde()
    assert serde.serialize({"name": "café", "n": 1}) == '{"name":"café","n":1}'.encode()
    moment = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    assert serde.serialize({"at": moment}) == b'{"at":"2026-01-01T12:30:00+00:00"}'


@pytest.mark.parametrize("value", [{1, 2}, object(), {"big": 2**70}, {1: "non-str key"}])
def test_json_that_cannot_be_encoded_is_a_serialization_error(value: Any) -> None:
    with pytest.raises(SerializationError, match=r"cannot encode .* as JSON") as caught:
        JsonSerde().serialize(value)
    assert caught.value.__cause__ is not None, "the orjson error stays chained"


@pytest.mark.parametrize("data", [b"{not json", b"", b"\xff\xfe", b'{"a": 1'])
def test_invalid_json_is_a_serialization_error(data: bytes) -> None:
    with pytest.raises(SerializationError, match="invalid JSON"):
        JsonSerde().deserialize(data)


def test_str_round_trips_utf8_and_encodes_anything_by_its_str() -> None:
    serde = StrSerde()
    assert serde.serialize("naïve ✓") == "naïve ✓".encode()
    assert serde.deserialize("naïve ✓".encode()) == "naïve ✓"
    assert serde.serialize(42) == b"42"
    assert serde.serialize(b"raw") == b"raw"


def test_str_that_is_not_utf8_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="invalid UTF-8"):
        StrSerde().deserialize(b"caf\xe9")


def test_bytes_passes_bytes_and_encodes_str() -> None:
    serde = BytesSerde()
    assert serde.serialize(b"\x00\xff") == b"\x00\xff"
    assert serde.serialize("é") == "é".encode()
    assert serde.serialize(bytearray(b"ab")) == b"ab"
    assert serde.serialize(memoryview(b"cd")) == b"cd"
    assert serde.deserialize(b"\x00\xff") == b"\x00\xff"


def test_bytes_names_the_type_it_cannot_encode() -> None:
    with pytest.raises(SerializationError, match="bytes serde cannot encode int"):
        BytesSerde().serialize(7)


@pytest.mark.parametrize(
    ("value", "data"),
    [
        (1, b"\x00\x00\x00\x00\x00\x00\x00\x01"),
        (-1, b"\xff" * 8),
        (2**63 - 1, b"\x7f" + b"\xff" * 7),
        (-(2**63), b"\x80" + b"\x00" * 7),
    ],
)
def test_int_is_a_big_endian_64_bit_long(value: int, data: bytes) -> None:
    serde = IntSerde()
    assert serde.serialize(value) == data
    assert serde.deserialize(data) == value


@pytest.mark.parametrize("value", [2**63, "12", 1.5])
def test_int_that_does_not_fit_names_the_value(value: Any) -> None:
    with pytest.raises(SerializationError, match="as a 64-bit integer") as caught:
        IntSerde().serialize(value)
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("data", [b"", b"\x00" * 4, b"\x00" * 9])
def test_int_of_the_wrong_length_names_the_length(data: bytes) -> None:
    expected = f"expected 8 bytes for an integer, got {len(data)}"
    with pytest.raises(SerializationError, match=expected):
        IntSerde().deserialize(data)


def test_pydantic_round_trips_a_model_and_accepts_plain_dicts() -> None:
    serde = PydanticSerde(Order)
    assert serde.name == "pydantic:Order"
    data = serde.serialize(Order(id=1, amount=2.5))
    assert data == b'{"id":1,"amount":2.5}'
    assert serde.deserialize(data) == Order(id=1, amount=2.5)
    assert serde.deserialize(serde.serialize({"id": 2, "amount": 1})) == Order(id=2, amount=1.0)


@pytest.mark.parametrize("data", [b'{"id": "one", "amount": 1}', b'{"id": 1}', b"not json"])
def test_pydantic_that_does_not_validate_names_the_model(data: bytes) -> None:
    with pytest.raises(SerializationError, match="not a valid Order"):
        PydanticSerde(Order).deserialize(data)


#: Per serde: objects to write (never None: callers of the fast serializer handle None
#: themselves) and payloads to read, valid or not.
OBJECTS: dict[str, list[Any]] = {
    "json": [{"a": [1, 2]}, "x", 3, [], {1, 2}],
    "str": ["plain", "ünï", 5, b"bytes"],
    "bytes": [b"\x00", "text", bytearray(b"z"), 3],
    "int": [0, -9, 2**62, 2**64, "7"],
    "pydantic:Order": [Order(id=1, amount=1.0), {"id": 3, "amount": 4}],
}
PAYLOADS: dict[str, list[bytes | None]] = {
    "json": [b'{"a":1}', b"[]", b"{bad", b"\xff", None],
    "str": [b"plain", "ünï".encode(), b"caf\xe9", None],
    "bytes": [b"\x00\x01", b"", None],
    "int": [b"\x00" * 8, b"\x00" * 3, None],
    "pydantic:Order": [b'{"id":1,"amount":2}', b"{}", None],
}


def _outcome(fn: Any, arg: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(arg)
    except Exception as exc:
        return "raised", type(exc)


@pytest.mark.parametrize("serde", SERDES, ids=lambda s: s.name)
def test_the_fast_paths_agree_with_the_full_methods_or_raise(serde: Serde) -> None:
    """Rows are read and written with the fast paths first; where one raises the runtime
    falls back to the full method. A fast path that returned something else would
    change data unseen, so each either agrees or raises."""
    fast_out, fast_in = fast_serializer(serde), fast_deserializer(serde)
    for obj in OBJECTS[serde.name]:
        fast, full = _outcome(fast_out, obj), _outcome(serde.serialize, obj)
        assert fast[0] == "raised" or fast == full, (serde.name, obj, fast, full)
    for data in PAYLOADS[serde.name]:
        fast, full = _outcome(fast_in, data), _outcome(serde.deserialize, data)
        assert fast[0] == "raised" or fast == full, (serde.name, data, fast, full)


def test_a_serde_is_any_object_with_serialize_and_deserialize() -> None:
    class Upper:
        name = "upper"

        def serialize(self, obj: Any) -> bytes | None:
            return None if obj is None else str(obj).upper().encode()

        def deserialize(self, data: bytes | None) -> Any:
            return None if data is None else data.decode().lower()

    custom = Upper()
    assert isinstance(custom, Serde)
    assert resolve_serde(custom) is custom
    assert fast_serializer(custom)("a") == b"A"


@pytest.mark.parametrize("name", ["json", "str", "bytes", "int"])
def test_resolve_by_name(name: str) -> None:
    assert resolve_serde(name).name == name


def test_resolve_a_model_class() -> None:
    serde = resolve_serde(Order)
    assert isinstance(serde, PydanticSerde)
    assert serde.model is Order


def test_an_unknown_name_is_a_configuration_error_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_serde("avro", setting="value_serde")
    assert caught.value.setting == "value_serde"
    assert "'avro'" in caught.value.problem
    assert "known: bytes, int, json, str" in caught.value.problem
    assert "'value_serde'" in str(caught.value)


def test_an_object_without_the_methods_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no serialize/deserialize") as caught:
        resolve_serde(42, setting="key_serde")  # type: ignore[arg-type]
    assert caught.value.setting == "key_serde"


def test_a_topic_names_which_of_its_serdes_is_unknown() -> None:
    app = App("serdes")
    with pytest.raises(ConfigurationError) as caught:
        app.topic("orders", key_serde="uuid")
    assert caught.value.setting == "key_serde"
    with pytest.raises(ConfigurationError) as caught:
        app.topic("orders", value_serde="protobuf")
    assert caught.value.setting == "value_serde"


def test_a_model_topic_validates_its_input_and_sends_the_invalid_to_the_dead_letters() -> None:
    app = App("serdes")
    orders = app.topic("orders", value_serde=Order)
    doubled = app.topic("doubled", value_serde=Order)
    app.stream(orders).map(lambda o: Order(id=o.id, amount=o.amount * 2)).to(doubled)
    with TestDriver(app) as driver:
        driver.send(orders, Order(id=1, amount=2.5), key="k")
        driver.send(orders, {"id": "x"}, key="k")
        assert [r.value for r in driver.read(doubled)] == [Order(id=1, amount=5.0)]
        dead = driver.read("serdes-dlq")
        assert [r.value for r in dead] == [b'{"id":"x"}']
        assert dead[0].headers["millstream.error.type"] == "millstream.errors.SerializationError"
        assert dead[0].headers["millstream.error.step"] == "deserialize(orders)"
