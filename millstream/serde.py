"""Serializers for keys and values: json (orjson, the default for values), str, bytes,
int and pydantic models. A serde is any object with ``serialize`` and ``deserialize``.

``None`` passes through both directions untouched (absent keys, tombstones).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import orjson
from pydantic import BaseModel, ValidationError

from millstream.errors import ConfigurationError, SerializationError


@runtime_checkable
class Serde(Protocol):
    """Turns Python objects into bytes and back. Both methods raise SerializationError."""

    name: str

    def serialize(self, obj: Any) -> bytes | None: ...

    def deserialize(self, data: bytes | None) -> Any: ...


class JsonSerde:
    """JSON via orjson. Serializes dicts, lists, numbers, strings, dataclasses, datetimes."""

    name = "json"
    fast_serialize = staticmethod(orjson.dumps)
    fast_deserialize = staticmethod(orjson.loads)

    def serialize(self, obj: Any) -> bytes | None:
        if obj is None:
            return None
        try:
            return orjson.dumps(obj)
        except TypeError as exc:
            raise SerializationError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc

    def deserialize(self, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(f"invalid JSON: {exc}") from exc


class StrSerde:
    """UTF-8 text."""

    name = "str"
    fast_serialize = staticmethod(str.encode)
    fast_deserialize = staticmethod(bytes.decode)

    def serialize(self, obj: Any) -> bytes | None:
        if obj is None:
            return None
        if isinstance(obj, bytes):
            return obj
        return str(obj).encode()

    def deserialize(self, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            raise SerializationError(f"invalid UTF-8: {exc}") from exc


class BytesSerde:
    """Raw bytes, unchanged. ``str`` is accepted on serialize and encoded as UTF-8."""

    name = "bytes"

    def serialize(self, obj: Any) -> bytes | None:
        if obj is None or isinstance(obj, bytes):
            return obj
        if isinstance(obj, str):
            return obj.encode()
        if isinstance(obj, bytearray | memoryview):
            return bytes(obj)
        raise SerializationError(f"bytes serde cannot encode {type(obj).__name__}")

    def deserialize(self, data: bytes | None) -> Any:
        return data


class IntSerde:
    """64-bit big-endian signed integers, as Kafka's LongSerializer writes them."""

    name = "int"
    _format = struct.Struct(">q")

    def serialize(self, obj: Any) -> bytes | None:
        if obj is None:
            return None
        try:
            return self._format.pack(obj)
        except struct.error as exc:
            raise SerializationError(f"cannot encode {obj!r} as a 64-bit integer") from exc

    def deserialize(self, data: bytes | None) -> Any:
        if data is None:
            return None
        if len(data) != 8:
            raise SerializationError(f"expected 8 bytes for an integer, got {len(data)}")
        return self._format.unpack(data)[0]


class PydanticSerde:
    """JSON validated into (and dumped from) a pydantic model."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.name = f"pydantic:{model.__name__}"

    def serialize(self, obj: Any) -> bytes | None:
        if obj is None:
            return None
        if isinstance(obj, BaseModel):
            return obj.model_dump_json().encode()
        return JsonSerde().serialize(obj)

    def deserialize(self, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return self.model.model_validate_json(data)
        except ValidationError as exc:
            raise SerializationError(f"not a valid {self.model.__name__}: {exc}") from exc


_BY_NAME: dict[str, Serde] = {
    s.name: s for s in (JsonSerde(), StrSerde(), BytesSerde(), IntSerde())
}

SerdeSpec = str | Serde | type[BaseModel]


def fast_serializer(serde: Serde) -> Callable[[Any], bytes | None]:
    """A cheaper serializer for the hot path, for values that are not None.

    It may raise for inputs the full ``serialize`` handles (a str serde given
    bytes, say); callers then fall back to ``serialize`` for that value.
    """
    fast: Callable[[Any], bytes | None] = getattr(serde, "fast_serialize", serde.serialize)
    return fast


def fast_deserializer(serde: Serde) -> Callable[[bytes | None], Any]:
    """A cheaper deserializer for the hot path; may raise where ``deserialize`` would
    succeed (None, say), and callers then fall back to ``deserialize``."""
    fast: Callable[[bytes | None], Any] = getattr(serde, "fast_deserialize", serde.deserialize)
    return fast


def resolve_serde(spec: SerdeSpec, *, setting: str = "serde") -> Serde:
    """A serde from a name ("json", "str", "bytes", "int"), a pydantic model or a serde object.

    Raises:
        ConfigurationError: an unknown name or an object without serialize/deserialize.
    """
    if isinstance(spec, str):
        try:
            return _BY_NAME[spec]
        except KeyError:
            known = ", ".join(sorted(_BY_NAME))
            raise ConfigurationError(setting, f"unknown serde {spec!r} (known: {known})") from None
    if isinstance(spec, type) and issubclass(spec, BaseModel):
        return PydanticSerde(spec)
    if isinstance(spec, Serde):
        return spec
    raise ConfigurationError(setting, f"{spec!r} has no serialize/deserialize methods")
