"""The table a :class:`~millstream.sinks.postgres.PostgresSink` writes: what it must be
(:class:`TableSpec`, from the sink's arguments, checked when the sink is made), what it
is (:class:`TargetTable`, read from the catalog, created when missing), and the SQL
that moves a batch from the staging table into it.

Kept apart from the sink because the table is the user's contract, while buffering,
connections and failures are the sink's: a table that does not fit the records is a
:class:`~millstream.errors.ConfigurationError` naming the column, found before any row
is written. Imports psycopg: only the sink module imports this one, once it has
checked that the ``postgres`` extra is installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg import Connection, Cursor, sql
from psycopg.types.json import Jsonb, JsonbDumper, set_json_dumps

from millstream.errors import ConfigurationError
from millstream.sinks.base import SinkRecord

#: The columns an append-mode row has besides the record's value: where it came from.
BOOKKEEPING = {"_topic": "text", "_partition": "integer", "_offset": "bigint"}
#: The staging column that orders an upsert batch (the last record of a key wins).
SEQ = "_millstream_seq"
STAGING = sql.Identifier("millstream_staging")
_KINDS: dict[type, str] = {bool: "boolean", int: "bigint", float: "double precision"}
_KINDS.update({str: "text", dict: "jsonb", list: "jsonb"})
_JSON_TYPES = {"json", "jsonb"}
_JSON_CONTAINERS = (dict, list)
_ids = sql.SQL(", ").join

_COLUMNS = """
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
ORDER BY attnum
"""
# A unique index ON CONFLICT can infer: plain columns, no predicate, exactly these keys.
_UNIQUE_INDEX = """
SELECT EXISTS (
    SELECT FROM pg_index i
    WHERE i.indrelid = %(table)s AND i.indisunique AND i.indpred IS NULL
      AND i.indexprs IS NULL AND i.indnkeyatts = cardinality(%(columns)s::text[])
      AND (SELECT array_agg(a.attname::text) FROM pg_attribute a
           WHERE a.attrelid = i.indrelid
             AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])
          ) @> %(columns)s::text[]
)
"""


def infer_type(values: Iterable[Any]) -> str:
    """The SQL type of a column created for ``values`` (Nones aside): boolean, bigint,
    double precision (also for ints and floats mixed), text, or jsonb (objects, lists,
    and values of different kinds); text when every value is None."""
    kinds = {_KINDS.get(type(v), "text") for v in values if v is not None}
    if kinds == {"bigint", "double precision"}:
        return "double precision"
    if len(kinds) > 1:
        return "jsonb"
    return kinds.pop() if kinds else "text"


@dataclass(frozen=True)
class TableSpec:
    """What the table must be, from the sink's arguments: its name, its upsert key (None:
    append), the columns written (None: the keys of the values) with their declared
    types (None: inferred), and whether to create it when missing."""

    label: str
    key: tuple[str, ...] | None
    declared: dict[str, str | None] | None
    create: bool

    @classmethod
    def of(
        cls,
        table: str,
        key: Sequence[str] | None,
        columns: Sequence[str] | Mapping[str, str] | None,
        create: bool,
    ) -> TableSpec:
        """Raises ConfigurationError naming the argument that is invalid."""
        if not isinstance(table, str) or not all(table.split(".")) or table.count(".") > 1:
            raise ConfigurationError("table", f"{table!r} is not a table or schema.table name")
        keys = None if key is None else _names("key", key)
        declared = None
        if columns is not None:
            types = columns if isinstance(columns, Mapping) else dict.fromkeys(columns)
            declared = {name: types[name] for name in _names("columns", list(types))}
            missing = [k for k in keys or () if k not in declared]
            if missing:
                raise ConfigurationError("key", f"{missing[0]!r} is not one of columns=")
        return cls(table, keys, declared, create)

    @property
    def name(self) -> sql.Identifier:
        return sql.Identifier(*self.label.split("."))

    @property
    def conflict(self) -> tuple[str, ...]:
        """The columns whose unique index tells a replayed row from a new one."""
        return self.key if self.key is not None else tuple(BOOKKEEPING)

    def create_statement(self, values: list[dict[str, Any]]) -> sql.Composed:
        """CREATE TABLE with the declared columns, else the keys of ``values``, typed as
        declared, else inferred from ``values``; and the unique constraint."""
        names = list(self.declared or dict.fromkeys(k for v in values for k in v))
        names += [k for k in self.key or () if k not in names]
        declared = self.declared or {}
        types = {n: declared.get(n) or infer_type(v.get(n) for v in values) for n in names}
        if self.key is None:
            types.update(BOOKKEEPING)
        columns = [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in types.items()]
        unique = "PRIMARY KEY" if self.key is not None else "UNIQUE"
        return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, {} ({}))").format(
            self.name, _ids(columns), sql.SQL(unique), _ids(map(sql.Identifier, self.conflict))
        )


def _names(argument: str, names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise ConfigurationError(argument, f"expected a list of column names, got {names!r}")
    if not names:
        raise ConfigurationError(argument, "name at least one column, or pass None")
    reserved = [n for n in names if n in BOOKKEEPING or n == SEQ]
    if reserved:
        raise ConfigurationError(argument, f"{reserved[0]!r} is a column millstream writes")
    if len(set(names)) != len(names):
        raise ConfigurationError(argument, f"a column is named twice in {list(names)}")
    return tuple(names)


@dataclass(frozen=True)
class TargetTable:
    """The table as the catalog has it: its writable columns (generated ones aside) and
    their types as ``format_type`` spells them."""

    spec: TableSpec
    types: dict[str, str]

    @classmethod
    def open(
        cls, conn: Connection[Any], spec: TableSpec, values: list[dict[str, Any]]
    ) -> TargetTable:
        """The table of ``spec``; when missing, created (``spec.create``) for ``values``,
        and its unique index too. Serialized across sinks by an advisory lock.

        Raises:
            ConfigurationError: the table, a column ``spec`` needs (a declared column, the
                key, the bookkeeping columns) or the unique index on them is missing.
        """
        with conn.transaction():
            if spec.create:
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [spec.label])
            found = _catalog(conn, spec)
            if found is None and spec.create:
                conn.execute(spec.create_statement(values))
                found = _catalog(conn, spec)
            if found is None:
                raise ConfigurationError("table", f"{spec.label} does not exist (create=False)")
            table = cls(spec, found[1])
            table.require(spec.declared or (), "columns= names")
            table.require(spec.conflict, "the key names" if spec.key else "append mode writes")
            if not _has_unique_index(conn, found[0], spec.conflict):
                if not spec.create:
                    raise ConfigurationError(
                        "table", f"{spec.label} has no unique index on {', '.join(spec.conflict)}"
                    )
                columns = _ids(map(sql.Identifier, spec.conflict))
                conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(spec.name, columns))
        return table

    def require(self, columns: Iterable[str], why: str) -> None:
        """Raises ConfigurationError naming the first of ``columns`` the table lacks."""
        for column in columns:
            if column not in self.types:
                raise ConfigurationError(
                    "table", f"{self.spec.label} has no column {column!r}, which {why}"
                )

    def columns_for(self, values: list[dict[str, Any]]) -> list[str]:
        """The value keys a batch writes: the declared columns, else every key of the
        values (and the upsert key), in the table's order. Raises ConfigurationError for a
        key with no column."""
        if self.spec.declared is not None:
            return list(self.spec.declared)
        keys: set[str] = set(self.spec.key or ()).union(*values)
        if self.spec.key is None:
            taken = sorted(keys & BOOKKEEPING.keys())
            if taken:
                raise ConfigurationError(
                    "columns", f"the records have a key {taken[0]!r}, a column of append mode"
                )
        self.require(sorted(keys - self.types.keys()), "the records have")
        return [c for c in self.types if c in keys]

    def staging_statement(self) -> sql.Composed:
        """A temporary table with the table's column types, without its constraints."""
        columns: list[sql.Composable] = [sql.Identifier(c) for c in self.types]
        if self.spec.key is not None:
            columns.append(sql.SQL("0::bigint AS {}").format(sql.Identifier(SEQ)))
        return sql.SQL(
            "CREATE TEMP TABLE {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA"
        ).format(STAGING, _ids(columns), self.spec.name)

    def copy_statement(self, columns: list[str]) -> sql.Composed:
        extra = BOOKKEEPING if self.spec.key is None else [SEQ]
        return sql.SQL("COPY {} ({}) FROM STDIN").format(
            STAGING, _ids(map(sql.Identifier, [*columns, *extra]))
        )

    def insert_statement(self, columns: list[str]) -> sql.Composed:
        """Staging into the table: replays skipped (append) or the last row of each key
        inserted or updated (upsert)."""
        if self.spec.key is None:
            written = _ids(map(sql.Identifier, [*columns, *BOOKKEEPING]))
            return sql.SQL(
                "INSERT INTO {0} ({1}) SELECT {1} FROM {2} ON CONFLICT ({3}) DO NOTHING"
            ).format(self.spec.name, written, STAGING, _ids(map(sql.Identifier, BOOKKEEPING)))
        keys = _ids(map(sql.Identifier, self.spec.key))
        updates = [
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
            for c in columns
            if c not in self.spec.key
        ]
        action = sql.SQL("DO UPDATE SET ") + _ids(updates) if updates else sql.SQL("DO NOTHING")
        return sql.SQL(
            "INSERT INTO {0} ({1}) SELECT DISTINCT ON ({2}) {1} FROM {3}"
            " ORDER BY {2}, {4} DESC ON CONFLICT ({2}) {5}"
        ).format(
            self.spec.name,
            _ids(map(sql.Identifier, columns)),
            keys,
            STAGING,
            sql.Identifier(SEQ),
            action,
        )

    def rows(self, records: list[SinkRecord], columns: list[str]) -> list[list[Any]]:
        """The COPY rows of ``records``: ``columns`` of each value (None where missing),
        then where it came from (append) or its place in the batch (upsert)."""
        wrap = [i for i, c in enumerate(columns) if self.types[c] in _JSON_TYPES]
        append = self.spec.key is None
        rows = []
        for seq, record in enumerate(records):
            row = list(map(record.value.get, columns))
            for i in wrap:
                # Objects and lists are sent as JSON anyway; a string must be one too.
                if row[i] is not None and type(row[i]) not in _JSON_CONTAINERS:
                    row[i] = Jsonb(row[i])
            if append:
                row.extend((record.topic, record.partition, record.offset))
            else:
                row.append(seq)
            rows.append(row)
        return rows


class _OrjsonbDumper(JsonbDumper):
    """Objects and lists as jsonb, dumped by orjson (several times faster than json)."""

    _dumps = orjson.dumps


def json_cursor(conn: Connection[Any]) -> Cursor[Any]:
    """A cursor that sends objects and lists as JSON (not lists as arrays), by orjson."""
    cursor = conn.cursor()
    cursor.adapters.register_dumper(dict, _OrjsonbDumper)
    cursor.adapters.register_dumper(list, _OrjsonbDumper)
    set_json_dumps(orjson.dumps, cursor)
    return cursor


def _catalog(conn: Connection[Any], spec: TableSpec) -> tuple[int, dict[str, str]] | None:
    """The table's oid and its writable columns with their types; None when missing."""
    found = conn.execute("SELECT to_regclass(%s)::oid", [spec.name.as_string(conn)]).fetchone()
    if found is None or found[0] is None:
        return None
    columns = conn.execute(_COLUMNS, [found[0]]).fetchall()
    return found[0], {name: type_ for name, type_ in columns}


def _has_unique_index(conn: Connection[Any], table: int, columns: Sequence[str]) -> bool:
    found = conn.execute(_UNIQUE_INDEX, {"table": table, "columns": list(columns)}).fetchone()
    return bool(found and found[0])
