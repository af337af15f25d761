"""A sink that writes JSON objects as rows of a PostgreSQL table, idempotently.

Idempotent because the worker is at-least-once: it commits offsets only after
``flush`` returned, so after a crash the records since the last commit come again.
Every flush is one transaction that COPYs the batch into a temporary staging table
and moves it into the table with ``INSERT ... SELECT ... ON CONFLICT``. In append
mode each row carries where its record came from (``_topic``, ``_partition``,
``_offset``, unique together), so a replayed record is skipped; in upsert mode rows
are keyed by columns of the value, the last record of a key wins, and a replay
converges to the same table.

The two failures of the sink contract (:mod:`millstream.sinks.base`) map onto
PostgreSQL's errors: a connection that fails or drops (server down or shutting down,
a standby that cannot write) raises :class:`~millstream.errors.SinkBackpressure` and
keeps the batch; a row the database refuses (a data error, a constraint violation)
is singled out by bisecting the batch under savepoints and goes to the dead-letter
topic with the database's error, while the other rows are written. The table itself
is :mod:`millstream.sinks.postgres_table`'s business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from millstream.errors import ConfigurationError, SerializationError, SinkBackpressure
from millstream.sinks.base import Sink, SinkContext, SinkRecord

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from millstream.sinks.postgres_table import STAGING, TableSpec, TargetTable, json_cursor
except ImportError as exc:  # the extra is not installed: PostgresSink() says so
    _MISSING: ImportError | None = exc
else:
    _MISSING = None

#: ``write`` flushes on its own once this many records wait: memory stays bounded.
FLUSH_AT = 50_000
#: Seconds to wait, suggested with :class:`SinkBackpressure`, before writing again.
RETRY_AFTER = 1.0
_CONNECTION_DEFAULTS = {"connect_timeout": "10", "application_name": "millstream"}

Refused = list[tuple[SinkRecord, BaseException]]


class PostgresSink(Sink):
    """Writes each record's value, a JSON object, as a row of ``table``.

    ``key=None`` appends (one row per record, replays skipped); ``key=[columns]``
    upserts by those columns, the last record of a key winning. ``columns`` limits the
    keys of the values that are written (a list), and can declare their SQL types for
    ``create`` (a dict); without it every key of a value is a column. ``create=True``
    creates a missing table and a missing unique index. See docs/sinks.md.

    Guarantee: when ``flush`` returns, every record written before it is in the table
    or was handed to the dead-letter topic, once however often it was written.

    Raises:
        ConfigurationError: psycopg is missing (the ``millstream[postgres]`` extra), an
            argument is invalid, or (from ``flush``) the table does not fit the records:
            the message names the column.
        SinkBackpressure: from ``flush`` (or ``write``, when it flushes) when PostgreSQL
            cannot be reached or cannot take writes now; the records stay buffered.
    """

    def __init__(
        self,
        dsn: str,
        table: str,
        *,
        key: Sequence[str] | None = None,
        columns: Sequence[str] | Mapping[str, str] | None = None,
        create: bool = True,
    ) -> None:
        if _MISSING is not None:
            raise ConfigurationError(
                "sink", "PostgresSink needs psycopg 3: pip install 'millstream[postgres]'"
            ) from _MISSING
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError("dsn", f"not a PostgreSQL connection string: {exc}") from exc
        self._conninfo = make_conninfo("", **{**_CONNECTION_DEFAULTS, **params})
        self._server = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
        self.table = table
        self.spec = TableSpec.of(table, key, columns, create)
        self.context: SinkContext | None = None
        self._buffer: list[SinkRecord] = []
        self._conn: psycopg.Connection[Any] | None = None
        self._target: TargetTable | None = None
        self._staged = False

    def __repr__(self) -> str:
        return f"PostgresSink({self.table!r} at {self._server})"

    # -- the sink contract ---------------------------------------------------------

    def open(self, context: SinkContext) -> None:
        """Connect once, so that a DSN that can never work fails the worker at startup.

        Raises:
            ConfigurationError: the server refuses the credentials, or the database or
                role does not exist (a server that is down is backpressure later).
        """
        self.context = context
        try:
            self._connect()
        except psycopg.Error as exc:
            self._disconnect()
            if _misconfigured(exc):
                raise ConfigurationError("dsn", f"{self._server}: {_first_line(exc)}") from exc

    def write(self, records: Sequence[SinkRecord]) -> None:
        """Buffer ``records``; flushes when :data:`FLUSH_AT` records wait."""
        self._buffer.extend(records)
        if len(self._buffer) >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records in one transaction, then dead-letter refused ones.

        A connection found broken (the server restarted since the last flush, or ended
        this session) is replaced at once, one time; a failure on a new connection
        raises :class:`SinkBackpressure`.
        """
        if not self._buffer:
            return
        for attempt in range(2):
            reused = self._conn is not None
            try:
                refused = self._write_buffer()
                break
            except psycopg.Error as exc:
                broken = self._conn is None or self._conn.broken or self._conn.closed
                self._disconnect()
                if _misconfigured(exc):
                    raise ConfigurationError("dsn", f"{self._server}: {_first_line(exc)}") from exc
                if not _unavailable(exc):
                    raise
                if attempt > 0 or not (reused and broken):
                    raise self._backpressure(exc) from exc
        self._buffer.clear()
        for record, error in refused:
            self._dead_letter(record, error)

    def discard(self) -> None:
        """Forget the buffered records: the worker rewinds and writes them again."""
        self._buffer.clear()

    def close(self) -> None:
        self._disconnect()

    # -- connection ----------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True)
            self._staged = False
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _backpressure(self, exc: psycopg.Error) -> SinkBackpressure:
        lines = str(exc).strip().splitlines()
        return SinkBackpressure(
            f"PostgreSQL at {self._server} cannot take writes to {self.table}: "
            f"{lines[0] if lines else type(exc).__name__}",
            retry_after=RETRY_AFTER,
        )

    def _dead_letter(self, record: SinkRecord, error: BaseException) -> None:
        if self.context is None:
            raise error
        self.context.dead_letter(record, error)

    # -- one flush -----------------------------------------------------------------

    def _write_buffer(self) -> Refused:
        """Write the buffer in one transaction; the records PostgreSQL refused."""
        records, refused = _objects(self._buffer, self.table)
        if not records:
            return refused
        conn = self._connect()
        values = [r.value for r in records]
        try:
            table = self._table(conn, values)
            columns = table.columns_for(values)
            rows = table.rows(records, columns)
            with conn.transaction():
                self._insert_bisecting(conn, table, columns, records, rows, refused)
        except ConfigurationError:
            self._target = None
            raise
        except (psycopg.ProgrammingError, psycopg.InternalError) as exc:
            if _unavailable(exc):
                raise
            self._target = None
            raise ConfigurationError("table", f"{self.table}: {exc}") from exc
        return refused

    def _table(self, conn: psycopg.Connection[Any], values: list[dict[str, Any]]) -> TargetTable:
        """The target table, found (or created) on first use; the connection's staging
        table for it, made once per connection."""
        if self._target is None:
            self._target = TargetTable.open(conn, self.spec, values)
            self._staged = False
        if not self._staged:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(STAGING))
            conn.execute(self._target.staging_statement())
            self._staged = True
        return self._target

    def _insert_bisecting(
        self,
        conn: psycopg.Connection[Any],
        table: TargetTable,
        columns: list[str],
        records: list[SinkRecord],
        rows: list[list[Any]],
        refused: Refused,
    ) -> None:
        """Insert ``rows`` under a savepoint; when PostgreSQL refuses one, each half on
        its own, in order (for upserts), down to the rows refused alone."""
        try:
            with conn.transaction(), json_cursor(conn) as cursor:
                with cursor.copy(table.copy_statement(columns)) as copy:
                    for row in rows:
                        copy.write_row(row)
                cursor.execute(table.insert_statement(columns))
                cursor.execute(sql.SQL("TRUNCATE {}").format(STAGING))
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            if len(rows) == 1:
                refused.append((records[0], exc))
                return
            half = len(rows) // 2
            self._insert_bisecting(conn, table, columns, records[:half], rows[:half], refused)
            self._insert_bisecting(conn, table, columns, records[half:], rows[half:], refused)


#: What PostgreSQL says to a connection that will never work: waiting does not help.
_NEVER = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "authentication failed",
)


def _misconfigured(exc: BaseException) -> bool:
    """True for a refused login or an unknown database or role."""
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in ("28P01", "28000", "3D000"):
        return True
    text = str(exc)
    return isinstance(exc, psycopg.OperationalError) and any(m in text for m in _NEVER)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _unavailable(exc: BaseException) -> bool:
    """True for the errors of a PostgreSQL that cannot take writes now: no connection,
    a lost one, a server shutting down or out of resources, a read-only standby."""
    return isinstance(
        exc,
        psycopg.OperationalError | psycopg.InterfaceError | psycopg.errors.ReadOnlySqlTransaction,
    )


def _objects(records: list[SinkRecord], table: str) -> tuple[list[SinkRecord], Refused]:
    """The records whose values are JSON objects, and the others, refused."""
    rows = [r for r in records if isinstance(r.value, dict)]
    if len(rows) == len(records):
        return rows, []
    refused: Refused = [
        (
            r,
            SerializationError(
                f"a row of {table} needs a JSON object, not {type(r.value).__name__}"
            ),
        )
        for r in records
        if not isinstance(r.value, dict)
    ]
    return rows, refused
