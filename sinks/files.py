"""A sink that writes records to files, JSON lines or Parquet, one set per source partition.

Readers must never see a partial file, nor a record twice, although the worker is
at-least-once and replays from its last commit after a crash. So a file is named
after the first offset it holds, ``{topic}/{partition}/[{sub}/]{offset:020d}.{suffix}``,
is written under a hidden temporary name, and is renamed to that name (atomically,
with an fsync of the file and its directory) only in :meth:`FileSink.flush`, which
the worker calls before it commits the offsets of those records. ``flush`` ends
every open file, so at each commit every visible file lies wholly before or wholly
after the committed offset.

A writer that resumes a partition at offset F (a new worker after a crash, a
rewind, or a partition that was another writer's in between) first removes the
partition's temporary files and its visible files that begin at F or later: they
hold only records about to be written again. Who writes a partition is recorded in
a marker file (``{topic}/{partition}/.writer``), read once per checkpoint interval,
so a partition that comes back after another writer had it is resumed as well.
The guarantee is spelled out in docs/sinks.md ("FileSink").
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from millstream.errors import (
    ConfigurationError,
    SerializationError,
    SinkBackpressure,
    SinkRefused,
)
from millstream.sinks.base import DeadLetter, Sink, SinkContext, SinkRecord
from millstream.sinks.file_formats import (
    FileFormat,
    JsonLinesFormat,
    ParquetFormat,
    ParquetSchema,
)

#: Record fields ``metadata=`` can add to each row, as the columns ``_key``, ``_offset``, ...
METADATA_FIELDS = ("key", "timestamp", "topic", "partition", "offset")
#: Parquet types of the metadata columns a declared schema does not name itself.
_METADATA_TYPES = {
    "_key": "string",
    "_timestamp": "int64",
    "_topic": "string",
    "_partition": "int32",
    "_offset": "int64",
}
#: The file in each partition directory that names the writer resuming it last.
WRITER_MARKER = ".writer"
#: Seconds a sink suggests waiting after the file system refused a write.
RETRY_AFTER = 5.0
_TEMPORARY = re.compile(r"^\.\d{20}-[0-9a-f]+\.\w+\.tmp$")


def _refuse(record: SinkRecord, error: BaseException) -> None:
    raise error


@dataclass
class PendingFile:
    """A file being assembled in memory: its rows as encoded chunks, until it is written."""

    directory: Path
    first_offset: int = -1
    rows: int = 0
    chunks: list[Any] = field(default_factory=list)
    #: Its temporary path, once written and fsynced there.
    temporary: Path | None = None

    def final_path(self, suffix: str) -> Path:
        return self.directory / f"{self.first_offset:020d}.{suffix}"


@dataclass
class PartitionFiles:
    """What one source partition has in flight, and whether its directory is ours."""

    root: Path
    #: The last offset written (replay detection: a lower one means a rewind).
    last_offset: int = -1
    #: Resume here: remove temporary files and visible files from this offset on.
    stale_from: int | None = None
    #: The first offset written since the last flush (where to resume if taken over).
    first_unchecked: int | None = None
    #: The writer marker was read (or written) since the last flush.
    checked: bool = False
    open: dict[str, PendingFile] = field(default_factory=dict)
    complete: list[PendingFile] = field(default_factory=list)

    def files(self) -> Iterator[PendingFile]:
        yield from self.complete
        yield from self.open.values()


class FileSink(Sink):
    """Writes each record's value as a row of a JSON lines or Parquet file.

    Files hold the records of one source partition (and ``partition_by`` value) in
    offset order, at most ``roll_every`` rows each; every checkpoint ends the open
    files, so a file also holds at most one checkpoint interval. A record whose value
    cannot be encoded (or does not fit the Parquet schema) goes to the dead-letter
    topic. ``metadata`` adds record fields as columns ``_key``, ``_timestamp``,
    ``_topic``, ``_partition``, ``_offset``; the value must then be a JSON object.

    Raises :class:`~millstream.errors.SinkBackpressure` from ``write`` or ``flush`` when
    the file system refuses a write (full disk, ...): the records stay, and the next
    ``flush`` writes them. Guarantee (docs/sinks.md, "FileSink"): after a crash and
    the replay from the last commit, the visible files hold every record once.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        format: Literal["jsonl", "parquet"] = "jsonl",
        roll_every: int = 100_000,
        partition_by: Callable[[Any], str] | None = None,
        metadata: Collection[str] = (),
        schema: ParquetSchema | None = None,
        row_group_size: int = 65_536,
    ) -> None:
        if roll_every < 1:
            raise ConfigurationError("roll_every", f"a number of rows >= 1, not {roll_every}")
        unknown = set(metadata) - set(METADATA_FIELDS)
        if unknown:
            raise ConfigurationError("metadata", f"{sorted(unknown)}: not in {METADATA_FIELDS}")
        self.directory = Path(directory)
        self.roll_every = roll_every
        self.partition_by = partition_by
        self.metadata = tuple(name for name in METADATA_FIELDS if name in metadata)
        self.format = self._format(format, schema, row_group_size)
        self._writer = uuid.uuid4().hex[:12]
        self._partitions: dict[tuple[str, int], PartitionFiles] = {}
        self._unsynced: set[Path] = set()
        self._dead_letter: DeadLetter = _refuse

    def _format(self, name: str, schema: ParquetSchema | None, row_group_size: int) -> FileFormat:
        if name == "jsonl":
            if schema is not None:
                raise ConfigurationError("schema", "only Parquet files have a schema")
            return JsonLinesFormat()
        if name != "parquet":
            raise ConfigurationError("format", f"'jsonl' or 'parquet', not {name!r}")
        columns = {f"_{n}": _METADATA_TYPES[f"_{n}"] for n in self.metadata}
        return ParquetFormat(schema, row_group_size, metadata_columns=columns)

    def open(self, context: SinkContext) -> None:
        self._dead_letter = context.dead_letter

    # -- write -------------------------------------------------------------------

    def write(self, records: Sequence[SinkRecord]) -> None:
        """Take ``records`` into their partitions' open files; write files that are
        complete under temporary names.

        Raises:
            SinkBackpressure: the file system refused a write; the records are kept.
        """
        for (topic, partition), batch in _by_partition(records).items():
            part = self._claim(topic, partition, batch[0].offset)
            for sub, rows in self._route(batch).items():
                self._append(part, sub, rows)
            part.last_offset = batch[-1].offset
        self._persist(publish=False)

    def _claim(self, topic: str, partition: int, offset: int) -> PartitionFiles:
        """The partition's files; fresh ones, to resume at ``offset``, when this is its
        first record here or a replay of records written before."""
        key = (topic, partition)
        part = self._partitions.get(key)
        if part is None or offset < part.last_offset:
            if part is not None:
                self._forget(part)
            root = self.directory / topic / str(partition)
            part = self._partitions[key] = PartitionFiles(root, stale_from=offset)
        if part.first_unchecked is None:
            part.first_unchecked = offset
        return part

    def _route(self, records: list[SinkRecord]) -> dict[str, list[SinkRecord]]:
        """The records by sub-directory (``partition_by``), each list in offset order."""
        records = self._objects(records)
        if self.partition_by is None:
            return {"": records} if records else {}
        routed: dict[str, list[SinkRecord]] = {}
        for record in records:
            try:
                sub = _sub_directory(self.partition_by(record.value))
            except Exception as exc:
                self._dead_letter(record, SinkRefused(f"partition_by: {exc!r}"))
                continue
            routed.setdefault(sub, []).append(record)
        return routed

    def _objects(self, records: list[SinkRecord]) -> list[SinkRecord]:
        """``records`` that can take metadata columns; the others go to the dead letters."""
        if not self.metadata:
            return records
        kept = []
        for record in records:
            if isinstance(record.value, dict):
                kept.append(record)
            else:
                error = SerializationError("metadata columns need a JSON object value")
                self._dead_letter(record, error)
        return kept

    def _append(self, part: PartitionFiles, sub: str, records: list[SinkRecord]) -> None:
        """Encode ``records`` into the open file of ``sub``, rolling to a new file
        whenever one holds ``roll_every`` rows (never between records of one offset)."""
        while records:
            pending = part.open.get(sub)
            if pending is None:
                pending = part.open[sub] = PendingFile(part.root / sub if sub else part.root)
            take = _cut(records, self.roll_every - pending.rows)
            batch, records = records[:take], records[take:]
            encoded = self.format.encode([self._row(r) for r in batch])
            for i, error in encoded.refused:
                self._dead_letter(batch[i], error)
            if encoded.accepted:
                if pending.rows == 0:
                    pending.first_offset = batch[encoded.accepted[0]].offset
                pending.chunks.append(encoded.chunk)
                pending.rows += len(encoded.accepted)
            if pending.rows >= self.roll_every:
                part.complete.append(part.open.pop(sub))

    def _row(self, record: SinkRecord) -> Any:
        if not self.metadata:
            return record.value
        return {**record.value, **{f"_{name}": getattr(record, name) for name in self.metadata}}

    # -- flush -------------------------------------------------------------------

    def flush(self) -> None:
        """End every open file and make every file visible under its final name.

        Raises:
            SinkBackpressure: the file system refused a write, or another writer took
                over a partition with records here (they are written again by the
                partition's owner); the records are kept for the next flush.
        """
        for part in self._partitions.values():
            part.complete.extend(f for f in part.open.values() if f.rows)
            part.open.clear()
        self._persist(publish=True)
        for part in self._partitions.values():
            part.checked, part.first_unchecked = False, None

    def _persist(self, *, publish: bool) -> None:
        """Resume partitions on disk, write complete files under temporary names and,
        with ``publish``, rename them to their final names and sync their directories."""
        try:
            for part in self._partitions.values():
                checked_now = self._check_writer(part)
                for pending in part.complete:
                    if pending.temporary is None:
                        self._write_temporary(pending)
                if publish and part.complete:
                    if not checked_now and self._marker(part) != self._writer:
                        raise SinkBackpressure(
                            f"{part.root}: another writer took the partition over",
                            retry_after=0.1,
                        )
                    self._publish(part)
            if publish:
                self._sync_directories()
        except OSError as exc:
            raise SinkBackpressure(
                f"cannot write files under {self.directory}: {exc}", retry_after=RETRY_AFTER
            ) from exc

    def _check_writer(self, part: PartitionFiles) -> bool:
        """Once per interval in which the partition is written: resume it on disk when it
        is new here, or when another writer wrote it meanwhile (the marker says so).
        True when the marker was read or written."""
        if part.stale_from is None:
            if part.checked or part.first_unchecked is None:
                return False
            if self._marker(part) != self._writer:
                part.stale_from = part.first_unchecked
        if part.stale_from is not None:
            self._remove_stale(part.root, part.stale_from)
            self._make_directory(part.root)
            (part.root / WRITER_MARKER).write_text(self._writer)
            part.stale_from = None
        part.checked = True
        return True

    def _marker(self, part: PartitionFiles) -> str | None:
        try:
            return (part.root / WRITER_MARKER).read_text()
        except FileNotFoundError:
            return None

    def _remove_stale(self, root: Path, offset: int) -> None:
        """Remove the partition's temporary files, and its files from ``offset`` on."""
        suffix = f".{self.format.suffix}"
        for folder, _dirs, names in os.walk(root):
            for name in names:
                if _TEMPORARY.match(name) or (
                    name.endswith(suffix)
                    and name[:20].isdigit()
                    and len(name) == 20 + len(suffix)
                    and int(name[:20]) >= offset
                ):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(folder, name))

    def _write_temporary(self, pending: PendingFile) -> None:
        self._make_directory(pending.directory)
        path = (
            pending.directory
            / f".{pending.first_offset:020d}-{self._writer}.{self.format.suffix}.tmp"
        )
        try:
            self.format.write(path, pending.chunks)
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        pending.temporary = path

    def _publish(self, part: PartitionFiles) -> None:
        while part.complete:
            pending = part.complete[0]
            assert pending.temporary is not None
            os.replace(pending.temporary, pending.final_path(self.format.suffix))
            self._unsynced.add(pending.directory)
            part.complete.pop(0)

    def _make_directory(self, path: Path) -> None:
        """Create ``path`` and its missing parents; their parents are synced at the flush."""
        missing: list[Path] = []
        while not path.is_dir():
            missing.append(path)
            path = path.parent
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                folder.mkdir()
            self._unsynced.add(folder.parent)

    def _sync_directories(self) -> None:
        for folder in sorted(self._unsynced, key=lambda p: len(p.parts), reverse=True):
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._unsynced.discard(folder)

    # -- discard and close -------------------------------------------------------

    def discard(self) -> None:
        """Forget every record not yet in a visible file (the worker replays them)."""
        for part in self._partitions.values():
            self._forget(part)
        self._partitions.clear()

    def close(self) -> None:
        self.discard()

    def _forget(self, part: PartitionFiles) -> None:
        for pending in part.files():
            if pending.temporary is not None:
                with contextlib.suppress(OSError):
                    pending.temporary.unlink()


def _by_partition(records: Sequence[SinkRecord]) -> dict[tuple[str, int], list[SinkRecord]]:
    """``records`` by source partition, each list in the order given."""
    runs: dict[tuple[str, int], list[SinkRecord]] = {}
    for record in records:
        runs.setdefault((record.topic, record.partition), []).append(record)
    return runs


def _cut(records: list[SinkRecord], room: int) -> int:
    """How many of ``records`` fit in ``room`` rows, not splitting an offset's records."""
    if room >= len(records):
        return len(records)
    cut = max(room, 1)
    while cut < len(records) and records[cut].offset == records[cut - 1].offset:
        cut += 1
    return cut


def _sub_directory(name: object) -> str:
    """A ``partition_by`` result as a relative path of visible, non-empty components."""
    if not isinstance(name, str):
        raise TypeError(f"partition_by returned {type(name).__name__}, not str")
    parts = name.split("/")
    if not all(parts) or any(p.startswith(".") for p in parts):
        raise ValueError(f"{name!r}: not a relative path of names that do not start with '.'")
    return name
