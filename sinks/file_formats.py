"""How :class:`~millstream.sinks.files.FileSink` encodes rows: JSON lines or Parquet.

A format turns a batch of rows into one encoded *chunk*, kept in memory until its
file is written whole: a Parquet file is readable only once its footer is written,
so a file is never appended to after it was written, in either format. A row a
format cannot encode is refused with its reason, for the sink to dead-letter; the
rest of the batch goes on. Writing a file fsyncs it before it returns.

pyarrow is imported only when a :class:`ParquetFormat` is made, so that JSON lines
need nothing beyond millstream's own dependencies.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from millstream.errors import ConfigurationError, SerializationError

#: A Parquet schema as FileSink takes it: a pyarrow schema, or column name -> type
#: (a pyarrow DataType, or its name such as "int64", "string", "timestamp[ms]").
ParquetSchema = Any


class Encoded(NamedTuple):
    """A batch after encoding: the chunk of the rows accepted, and the refused ones."""

    chunk: Any
    #: Positions (in the batch) of the rows in ``chunk``, in order.
    accepted: list[int]
    #: Positions of the refused rows, with the reason.
    refused: list[tuple[int, Exception]]


class FileFormat(ABC):
    """Encodes rows into chunks, and writes a file of chunks."""

    #: The file name suffix, without the dot.
    suffix: str

    @abstractmethod
    def encode(self, rows: Sequence[Any]) -> Encoded:
        """Encode ``rows``; never raises for a row it cannot encode: it refuses it."""

    @abstractmethod
    def write(self, path: Path, chunks: Sequence[Any]) -> None:
        """Write ``chunks`` as the file ``path`` (replacing it) and fsync it.

        Raises:
            OSError: the file could not be written whole.
        """


class JsonLinesFormat(FileFormat):
    """One JSON object per line (orjson), UTF-8, each line ending with ``\\n``."""

    suffix = "jsonl"

    def encode(self, rows: Sequence[Any]) -> Encoded:
        dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        try:
            return Encoded(
                b"".join([dumps(row, option=option) for row in rows]), [*range(len(rows))], []
            )
        except TypeError:
            pass
        lines: list[bytes] = []
        accepted: list[int] = []
        refused: list[tuple[int, Exception]] = []
        for i, row in enumerate(rows):
            try:
                lines.append(dumps(row, option=option))
                accepted.append(i)
            except TypeError as exc:
                refused.append((i, SerializationError(f"not JSON-serializable: {exc}")))
        return Encoded(b"".join(lines), accepted, refused)

    def write(self, path: Path, chunks: Sequence[Any]) -> None:
        with path.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())


class ParquetFormat(FileFormat):
    """Parquet files of row groups of ``row_group_size`` rows, one column per field.

    Every row must be a JSON object (a dict) whose fields the schema has: the declared
    ``schema``, or the one pyarrow infers from the first batch. A row with a field the
    schema lacks, or a value of another type, is refused rather than cut.
    """

    suffix = "parquet"

    def __init__(
        self,
        schema: ParquetSchema | None,
        row_group_size: int,
        metadata_columns: Mapping[str, str] | None = None,
    ) -> None:
        try:
            import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
            import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
        except ImportError as exc:
            raise ConfigurationError(
                "format", "Parquet files need pyarrow: pip install 'millstream[parquet]'"
            ) from exc
        self._pa, self._pq = pa, pq
        self.row_group_size = row_group_size
        self.schema: Any = None
        self._fields: frozenset[str] = frozenset()
        if schema is not None:
            self._adopt(self._declared(schema, metadata_columns or {}))

    def _adopt(self, schema: Any) -> None:
        self.schema, self._fields = schema, frozenset(schema.names)

    def _declared(self, schema: ParquetSchema, metadata_columns: Mapping[str, str]) -> Any:
        """The declared schema, with the metadata columns it does not name itself."""
        pa = self._pa
        if isinstance(schema, Mapping):
            schema = [(name, _type(pa, kind)) for name, kind in schema.items()]
        elif not isinstance(schema, pa.Schema):
            raise ConfigurationError("schema", "a pyarrow.Schema or a dict of name -> type")
        try:
            schema = pa.schema(schema)
            for name, kind in metadata_columns.items():
                if name not in schema.names:
                    schema = schema.append(pa.field(name, _type(pa, kind)))
        except (ValueError, TypeError) as exc:
            raise ConfigurationError("schema", str(exc)) from exc
        return schema

    def encode(self, rows: Sequence[Any]) -> Encoded:
        if self.schema is None:
            return self._infer(rows)
        fields = self._fields
        fitting: list[int] = []
        refused: list[tuple[int, Exception]] = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                refused.append((i, _not_a_dict(row)))
            elif not fields.issuperset(row):
                extra = ", ".join(sorted(map(str, set(row) - fields)))
                refused.append(
                    (i, SerializationError(f"fields not in the Parquet schema: {extra}"))
                )
            else:
                fitting.append(i)
        if len(fitting) == len(rows):
            try:
                return Encoded(self._table(rows), fitting, refused)
            except (self._pa.ArrowException, TypeError, ValueError):
                pass
        return self._one_by_one(rows, fitting, refused)

    def _infer(self, rows: Sequence[Any]) -> Encoded:
        """The first batch: its schema becomes the schema of every file of the sink.

        A column's type is the one pyarrow infers from its values in the batch, or,
        when they have no common type, that of its first value; misfits are refused."""
        dicts = [row for row in rows if isinstance(row, dict)]
        if not dicts:
            return Encoded(None, [], [(i, _not_a_dict(row)) for i, row in enumerate(rows)])
        names = {name: None for row in dicts for name in row}
        columns = [(name, self._column_type([row.get(name) for row in dicts])) for name in names]
        self._adopt(self._pa.schema(columns))
        return self.encode(rows)

    def _column_type(self, values: list[Any]) -> Any:
        pa, failures = self._pa, (self._pa.ArrowException, TypeError, ValueError)
        with contextlib.suppress(*failures):
            return pa.array(values).type
        for value in values:
            if value is not None:
                with contextlib.suppress(*failures):
                    return pa.array([value]).type
        return pa.null()

    def _one_by_one(
        self, rows: Sequence[Any], fitting: list[int], refused: list[tuple[int, Exception]]
    ) -> Encoded:
        accepted: list[int] = []
        for i in fitting:
            try:
                self._table([rows[i]])
                accepted.append(i)
            except (self._pa.ArrowException, TypeError, ValueError) as exc:
                refused.append((i, SerializationError(f"does not fit the Parquet schema: {exc}")))
        refused.sort(key=lambda pair: pair[0])
        table = self._table([rows[i] for i in accepted]) if accepted else None
        return Encoded(table, accepted, refused)

    def _table(self, rows: Sequence[Any]) -> Any:
        return self._pa.Table.from_pylist(rows, schema=self.schema)

    def write(self, path: Path, chunks: Sequence[Any]) -> None:
        tables = [c for c in chunks if c is not None]
        table = self._pa.concat_tables(tables) if tables else self.schema.empty_table()
        self._pq.write_table(table, path, row_group_size=self.row_group_size)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _not_a_dict(row: Any) -> SerializationError:
    return SerializationError(f"a Parquet row is a dict of fields, not {type(row).__name__}")


def _type(pa: Any, kind: Any) -> Any:
    """A pyarrow type, or the one a name such as "int64" or "string" stands for."""
    return kind if isinstance(kind, pa.DataType) else pa.type_for_alias(kind)
