"""Writing store changes to changelog topics, closed by a position marker.

Per checkpoint and store partition: one record per changed key (a tombstone for
a delete), then a marker record saying up to which source offset the state now
reflects its input, and the step's metadata (stream time). The marker is what
makes restores exact: changes after the last marker are not applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from millstream.processors.state.backends import TOMBSTONE
from millstream.processors.state.store import StorePartition

#: Key of position markers; not valid JSON, so it never collides with a store key.
MARKER_KEY = b"\x00millstream.marker"

#: Compacted changelogs: a store's latest value per key is all a restore needs.
CHANGELOG_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}

#: Sends one changelog record: (topic, partition, key, value).
ChangelogSend = Callable[[str, int, bytes, bytes | None], None]


def encode_marker(source_offset: int, meta: dict[str, Any]) -> bytes:
    return orjson.dumps({"source": source_offset, "meta": meta})


def decode_marker(data: bytes | None) -> tuple[int, dict[str, Any]]:
    raw = orjson.loads(data or b"{}")
    return int(raw.get("source", 0)), raw.get("meta") or {}


def write_changelog(store: StorePartition, send: ChangelogSend) -> None:
    """Send the store's buffered changes and a marker to its changelog partition."""
    topic, partition = store.changelog, store.partition
    encode_key, encode_value = store.codec.encode_key, store.codec.encode_value
    for key, value in store.changes().items():
        send(topic, partition, encode_key(key), None if value is TOMBSTONE else encode_value(value))
    send(topic, partition, MARKER_KEY, encode_marker(*store.marker()))
