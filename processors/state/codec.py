"""How store keys and values become changelog bytes: JSON, with tuple keys kept as tuples."""

from __future__ import annotations

from typing import Any

import orjson

from millstream.errors import SerializationError


class Codec:
    """JSON for keys and values. ``tuple_keys`` turns decoded arrays back into tuples."""

    def __init__(self, *, tuple_keys: bool = False) -> None:
        self._tuple_keys = tuple_keys

    def encode_key(self, key: Any) -> bytes:
        return orjson.dumps(key)

    def decode_key(self, data: bytes) -> Any:
        """The key of ``data``; with ``tuple_keys`` every array in it (a window key and a
        compound group key inside it) comes back as a tuple, so the key can be hashed."""
        key = _loads(data)
        return hashable(key) if self._tuple_keys else key

    def encode_value(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def decode_value(self, data: bytes) -> Any:
        return _loads(data)


def hashable(value: Any) -> Any:
    """``value`` with every list in it turned into a tuple (JSON has no tuples)."""
    if isinstance(value, list):
        return tuple(hashable(item) for item in value)
    return value


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"a store entry is not valid JSON: {exc}") from exc
