"""Where a store partition keeps its data: a dict in memory, or a RocksDB database.

Both speak encoded bytes at their boundary with the changelog (``apply_encoded``)
and Python objects to the store (``get``/``items``). A RocksDB backend also
records the changelog :class:`Position` it has applied, in the same write batch
as the data, so what it holds and the position it claims can never disagree.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import orjson
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteBufferManager

from millstream.errors import MillstreamError
from millstream.processors.state.codec import Codec

log = logging.getLogger("millstream.state")

TOMBSTONE: Any = object()
_POSITION_KEY = b"\x00millstream.position"


@dataclass(frozen=True)
class Position:
    """How far a store partition has applied its changelog, and what that state reflects."""

    changelog_offset: int
    source_offset: int
    meta: dict[str, Any]

    def encode(self) -> bytes:
        return orjson.dumps(
            {"changelog": self.changelog_offset, "source": self.source_offset, "meta": self.meta}
        )

    @staticmethod
    def decode(data: bytes) -> Position:
        raw = orjson.loads(data)
        return Position(raw["changelog"], raw["source"], raw.get("meta") or {})


class Backend(Protocol):
    def get(self, key: Any) -> Any:
        """The value for ``key``, or TOMBSTONE when absent."""

    def items(self) -> Iterator[tuple[Any, Any]]: ...

    def apply(self, changes: dict[Any, Any], position: Position) -> None:
        """Apply decoded changes (TOMBSTONE deletes) and record ``position``."""

    def apply_encoded(self, changes: dict[bytes, bytes | None], position: Position) -> None:
        """Apply changelog bytes (None deletes) and record ``position``."""

    def position(self) -> Position | None:
        """The last recorded position if it survives restarts, else None."""

    def close(self) -> None: ...

    def __len__(self) -> int: ...


class MemoryBackend:
    """A dict. Nothing survives the process, so every assignment restores in full."""

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._data: dict[Any, Any] = {}

    def get(self, key: Any) -> Any:
        return self._data.get(key, TOMBSTONE)

    def items(self) -> Iterator[tuple[Any, Any]]:
        return iter(list(self._data.items()))

    def apply(self, changes: dict[Any, Any], position: Position) -> None:
        data = self._data
        for key, value in changes.items():
            if value is TOMBSTONE:
                data.pop(key, None)
            else:
                data[key] = value

    def apply_encoded(self, changes: dict[bytes, bytes | None], position: Position) -> None:
        data, key_of, value_of = self._data, self._codec.decode_key, self._codec.decode_value
        for raw_key, raw_value in changes.items():
            if raw_value is None:
                data.pop(key_of(raw_key), None)
            else:
                data[key_of(raw_key)] = value_of(raw_value)

    def position(self) -> Position | None:
        return None

    def close(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class RocksDBBackend:
    """A RocksDB database per store partition, kept on disk across restarts."""

    def __init__(self, path: Path, codec: Codec, *, lock_timeout: float = 30.0) -> None:
        self.path = path
        self._codec = codec
        self._db = _open_rocksdb(path, lock_timeout)

    def get(self, key: Any) -> Any:
        raw = self._db.get(self._codec.encode_key(key))
        return TOMBSTONE if raw is None else self._codec.decode_value(raw)

    def items(self) -> Iterator[tuple[Any, Any]]:
        key_of, value_of = self._codec.decode_key, self._codec.decode_value
        for raw_key, raw_value in self._db.items():
            if raw_key != _POSITION_KEY:
                yield key_of(cast(bytes, raw_key)), value_of(cast(bytes, raw_value))

    def apply(self, changes: dict[Any, Any], position: Position) -> None:
        key_of, value_of = self._codec.encode_key, self._codec.encode_value
        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is TOMBSTONE:
                batch.delete(key_of(key))
            else:
                batch.put(key_of(key), value_of(value))
        batch.put(_POSITION_KEY, position.encode())
        self._db.write(batch)

    def apply_encoded(self, changes: dict[bytes, bytes | None], position: Position) -> None:
        batch = WriteBatch(raw_mode=True)
        for raw_key, raw_value in changes.items():
            if raw_value is None:
                batch.delete(raw_key)
            else:
                batch.put(raw_key, raw_value)
        batch.put(_POSITION_KEY, position.encode())
        self._db.write(batch)

    def position(self) -> Position | None:
        raw = self._db.get(_POSITION_KEY)
        return None if raw is None else Position.decode(raw)

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        count = self._db.property_int_value("rocksdb.estimate-num-keys")
        return int(count or 0)


def _open_rocksdb(path: Path, lock_timeout: float) -> Rdict:
    """Open (or create) the database at ``path``.

    A database another process still holds (a worker that has not let go of the
    partition yet) is retried until ``lock_timeout``; a corrupt one is deleted so
    the store restores in full from its changelog.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout
    while True:
        try:
            return Rdict(str(path), _options())
        except Exception as exc:
            message = str(exc)
            if "lock" in message.lower() and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            if "lock" in message.lower():
                raise MillstreamError(f"state store {path} is locked by another process") from exc
            log.warning("state store %s cannot be opened (%s); restoring it in full", path, exc)
            shutil.rmtree(path, ignore_errors=True)
            return Rdict(str(path), _options())


#: The memory budget of every RocksDB store partition of the process together, however
#: many partitions and keys it holds: one LRU block cache for data, index and filter
#: blocks, to which the memtables are charged too (see _WRITE_BUFFERS). The capacity is
#: soft (a block in use is never evicted); docs/state.md gives measured figures.
BLOCK_CACHE_BYTES = 64 * 1024 * 1024
#: The share of BLOCK_CACHE_BYTES the memtables of all store partitions may hold before
#: RocksDB flushes the one being written to.
WRITE_BUFFER_BYTES = 32 * 1024 * 1024

_BLOCK_CACHE = Cache(BLOCK_CACHE_BYTES)
_WRITE_BUFFERS = WriteBufferManager.new_write_buffer_manager_with_cache(
    WRITE_BUFFER_BYTES, False, _BLOCK_CACHE
)


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_max_open_files(64)
    # Each partition has its own database; RocksDB's 64 MB memtable default per
    # database would make a worker's memory grow with its partitions. Two 8 MB
    # memtables at most per partition, within the shared budget of _WRITE_BUFFERS.
    options.set_write_buffer_size(8 * 1024 * 1024)
    options.set_max_write_buffer_number(2)
    options.set_write_buffer_manager(_WRITE_BUFFERS)
    table = BlockBasedOptions()
    table.set_block_cache(_BLOCK_CACHE)
    # Index and filter blocks live in the cache too, not beside it per open file.
    table.set_cache_index_and_filter_blocks(True)
    options.set_block_based_table_factory(table)
    return options


def rocksdb_memory() -> tuple[int, int]:
    """Bytes the RocksDB stores of this process hold in their shared budget (blocks and
    memtables), and the part of it that memtables hold."""
    return int(_BLOCK_CACHE.get_usage()), int(_WRITE_BUFFERS.get_usage())
