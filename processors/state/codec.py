"""How store keys and values become changelog bytes: JSON, with tuple keys kept as tuples."""

from __future__ import annotations

from typing import Any

import orjson


class Codec:
    """JSON for keys and values. ``tuple_keys`` turns decoded arrays back into tuples."""

    def __init__(self, *, tuple_keys: bool = False) -> None:
        self._tuple_keys = tuple_keys

    def encode_key(self, key: Any) -> bytes:
        return orjson.dumps(key)

    def decode_key(self, data: bytes) -> Any:
        key = orjson.loads(data)
        return tuple(key) if self._tuple_keys and isinstance(key, list) else key

    def encode_value(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def decode_value(self, data: bytes) -> Any:
        return orjson.loads(data)
