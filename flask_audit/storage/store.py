"""The ``audit_logs`` table: Peewee model, schema, idempotent batch insert, retention.

PostgreSQL first (JSONB metadata, timestamptz, uuid); SQLite as the embedded default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson
import peewee
from playhouse.db_url import connect

from flask_audit.errors import AuditError, RejectedError, TransientStoreError
from flask_audit.events import schema
from flask_audit.events.event import AuditEvent
from flask_audit.storage.ddl import (
    CRITICAL_INDEX,
    CRITICAL_INDEX_COLUMNS,
    CRITICAL_INDEX_WHERE,
    LZ4_AVAILABLE_SQL,
    SEAL_LEAVES_COMPRESSION_SQL,
    SEAL_LEAVES_LZ4_SQL,
    TABLE_NAME,
    partial_index_sql,
    seals_index_sql,
    seals_table_sql,
    stream_cursors_table_sql,
)
from flask_audit.storage.partitions import create_partitioned_schema
from flask_audit.storage.pgcopy import copy_insert, copy_lines

#: PostgreSQL SQLSTATEs that say "the database is not ready", not "this row is bad": among them a
#: missing table (42P01) and a missing column (42703: a worker of this release draining into a
#: table that ``flask audit migrate`` has not brought up to date yet; no row can cause it)
TRANSIENT_PGCODES = {"42P01", "42703", "57P01", "57P02", "57P03", "53300", "08000", "08003", "08006"}


class JSONField(peewee.Field):
    """JSONB on PostgreSQL, TEXT elsewhere; always a dict in Python."""

    field_type = "AUDIT_JSON"

    def db_value(self, value: Any) -> Any:
        return None if value is None else orjson.dumps(value).decode()

    def python_value(self, value: Any) -> Any:
        return orjson.loads(value) if isinstance(value, (str, bytes)) else value


class UTCDateTimeField(peewee.Field):
    """timestamptz on PostgreSQL; a sortable ISO string in UTC elsewhere. Always aware in Python."""

    field_type = "AUDIT_TIMESTAMP"

    def db_value(self, value: datetime | str | None) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        value = value.astimezone(timezone.utc)
        if isinstance(self.model._meta.database, peewee.PostgresqlDatabase):
            return value
        return value.isoformat(sep=" ", timespec="microseconds")

    def python_value(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


FIELD_TYPES = {
    "postgres": {"AUDIT_JSON": "JSONB", "AUDIT_TIMESTAMP": "TIMESTAMPTZ"},
    "other": {"AUDIT_JSON": "TEXT", "AUDIT_TIMESTAMP": "VARCHAR(40)"},
}


# _peewee_field and _model run once, at import: a mutation of them can never be reached by a test
# (make mutation skips them); test_postgres_schema_uses_native_types_and_indexes checks the table.
def _peewee_field(f: schema.Field) -> peewee.Field:  # pragma: no mutate block
    """The Peewee field of a declared field (the DDL it makes is the 0.1.0 release's)."""
    if f.type == "uuid":
        return peewee.UUIDField(unique=f.name == "event_id", null=f.nullable)
    if f.type == "timestamp":
        return UTCDateTimeField(null=f.nullable)
    if f.type == "json":
        return JSONField(null=f.nullable)
    if f.unbounded_column or f.max_length is None:
        return peewee.TextField(null=f.nullable)
    return peewee.CharField(max_length=f.max_length, null=f.nullable)


def _model() -> type[peewee.Model]:  # pragma: no mutate block
    # The questions people ask: a user over time, an event type over time, a resource, and time
    # ranges (retention, export, newest first); see schema.INDEXES.
    # (the partial ones: ``AuditStore.create_schema``, as Peewee's Meta cannot say WHERE)
    full = tuple((cols, False) for _, cols, where in schema.INDEXES if not where)
    meta = type("Meta", (), {"table_name": TABLE_NAME, "indexes": full})
    attrs: dict[str, Any] = {"id": peewee.BigAutoField(), "Meta": meta, "__module__": __name__}
    attrs.update({f.name: _peewee_field(f) for f in schema.FIELDS})
    attrs["__doc__"] = "One stored audit event, a column per declared field. Bound per store."
    return type("AuditLog", (peewee.Model,), attrs)


#: One stored audit event. Bound per store (see ``AuditStore``), never to a global database.
AuditLog = _model()


def open_database(url: str) -> peewee.Database:
    """Open a Peewee database from a URL, creating the folder of a SQLite file."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return connect(
            url,
            field_types=FIELD_TYPES["other"],
            pragmas={"journal_mode": "wal", "busy_timeout": 5000},
        )
    if url.startswith(("postgres://", "postgresql://")):
        return connect(url, field_types=FIELD_TYPES["postgres"])
    return connect(url, field_types=FIELD_TYPES["other"])


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, (peewee.OperationalError, peewee.InterfaceError)):
        return True
    code = getattr(getattr(exc, "orig", None) or exc.__cause__ or exc, "pgcode", None)
    return code in TRANSIENT_PGCODES


class AuditStore:
    """Reads and writes ``audit_logs`` on one database."""

    def __init__(self, url: str, *, partitioned: bool = False) -> None:
        self.url = url
        self.partitioned = partitioned
        self.database = open_database(url)
        self.model = _bound(self.database)

    @property
    def _conflict_target(self) -> list[peewee.Field]:
        # A partitioned table's unique keys must hold the partition key; a redelivered event
        # carries the same created_at, so (event_id, created_at) still catches it.
        if self.partitioned:
            return [self.model.event_id, self.model.created_at]
        return [self.model.event_id]

    @property
    def is_postgres(self) -> bool:
        return isinstance(self.database, peewee.PostgresqlDatabase)

    def create_schema(self) -> None:
        """Create the table and its indexes (partitioned by month when asked); safe to run again."""
        with self.translate():
            if self.partitioned:
                create_partitioned_schema(self)
            else:
                self.database.create_tables([self.model], safe=True)
                for suffix, columns, where in schema.INDEXES:
                    if where:
                        self.database.execute_sql(partial_index_sql(suffix, columns, where))
            self.database.execute_sql(
                f"CREATE INDEX IF NOT EXISTS {CRITICAL_INDEX} ON {TABLE_NAME} {CRITICAL_INDEX_COLUMNS}"
                f" WHERE {CRITICAL_INDEX_WHERE}"
            )
            self.database.execute_sql(seals_table_sql(self.is_postgres))
            self.database.execute_sql(seals_index_sql())
            self.compress_seal_leaves()
            self.database.execute_sql(stream_cursors_table_sql())

    def compress_seal_leaves(self) -> None:
        """Have PostgreSQL compress new seals' leaves with lz4 where it can (14 or later, built
        with lz4). A seal's leaves (row ids, times, event ids, hashes: 72 bytes a row) are
        stored compressed, and the default pglz spent two thirds of a 1,024-row seal's insert
        compressing them: 3.2 against 1.0 ms of the server's CPU, the same size on disk. Old
        seals stay as they are (PostgreSQL reads either). A no-op when set already, so no lock is
        taken again; SQLite and servers without lz4 keep what they have."""
        if not self.is_postgres:
            return
        available = self.database.execute_sql(LZ4_AVAILABLE_SQL).fetchone()
        if not (available and available[0]):
            return
        if self.database.execute_sql(SEAL_LEAVES_COMPRESSION_SQL).fetchone()[0] != "l":
            self.database.execute_sql(SEAL_LEAVES_LZ4_SQL)

    def insert(self, events: Sequence[AuditEvent]) -> int:
        """Insert ``events`` in one transaction, skipping event_ids already stored.

        Returns the number of new rows. Raises ``TransientStoreError`` when the database is
        unreachable and ``RejectedError`` when it refuses the rows.
        """
        return self.write_batch([event.to_row() for event in events])[0]

    def write_batch(self, rows: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Insert rows (column -> value, as ``AuditEvent.to_row`` or ``decode_entry`` give them),
        skipping event_ids already stored; returns (new rows, INSERT/COPY statements it took)."""
        if not rows:
            return 0, 0
        if self.is_postgres:
            with self.translate():
                return copy_insert(self.database, TABLE_NAME, rows, [f.name for f in self._conflict_target])
        with self.translate(), self.database.atomic():
            # ON CONFLICT (event_id) DO NOTHING on both PostgreSQL and SQLite: only a duplicate
            # event_id is skipped, every other violation still raises (SQLite's INSERT OR IGNORE
            # would silently drop a row that breaks NOT NULL).
            query = (
                self.model.insert_many(rows)
                .on_conflict(action="nothing", conflict_target=self._conflict_target)
                .as_rowcount()
            )
            return int(query.execute()), 1

    def write_lines(self, body: bytes, count: int) -> tuple[int, int]:
        """``write_batch`` of ``count`` rows already in COPY's text format (PostgreSQL only;
        ``line.checked_batch`` makes them). Raises ``RejectedError`` when the database refuses
        any of them: then nothing was stored."""
        with self.translate():
            return copy_lines(self.database, TABLE_NAME, body, count, [f.name for f in self._conflict_target])

    def count(self) -> int:
        with self.translate():
            return self.model.select().count()

    def event_ids(self) -> list[str]:
        """Every stored event_id (tests and ledgers)."""
        with self.translate():
            return [str(row[0]) for row in self.model.select(self.model.event_id).tuples()]

    def count_older_than(self, cutoff: datetime) -> int:
        with self.translate():
            return self.model.select().where(self.model.created_at < cutoff).count()

    def purge_before(
        self, cutoff: datetime, *, chunk: int, progress: Callable[[int], Any] | None = None
    ) -> int:
        """Delete rows created before ``cutoff``, ``chunk`` rows per statement and transaction, so
        locks stay short and the table stays usable; returns rows deleted."""
        deleted = 0
        while True:
            with self.translate(), self.database.atomic():
                ids = self.model.select(self.model.id).where(self.model.created_at < cutoff).limit(chunk)
                n = self.model.delete().where(self.model.id.in_(ids)).execute()
            deleted += n
            if progress:
                progress(n)
            if n < chunk:
                return deleted

    def ping(self) -> None:
        """Raise ``TransientStoreError`` unless the database answers."""
        with self.translate():
            self.database.execute_sql("SELECT 1").fetchone()

    def recent(self, limit: int = 20, category: str | None = None) -> Iterable[AuditLog]:
        """Newest first; with ``category="critical"`` PostgreSQL reads the partial index on
        critical rows rather than scanning."""
        query = self.model.select().order_by(self.model.created_at.desc()).limit(limit)
        if category:
            query = query.where(self.model.event_category == category)
        with self.translate():
            return list(query)

    def close(self) -> None:
        if not self.database.is_closed():
            self.database.close()

    def translate(self) -> _Translate:
        """A context in which driver errors become TransientStoreError or RejectedError; for the
        queries other storage modules and routes build on ``model``."""
        return _Translate(self.database)


class _Translate:
    """Turn driver errors into TransientStoreError / RejectedError, dropping a broken connection."""

    def __init__(self, database: peewee.Database) -> None:
        self.database = database

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, AuditError):
            return False
        if isinstance(exc, (peewee.PeeweeException, ValueError)):
            if _is_transient(exc):
                try:
                    self.database.close()
                except Exception:  # the connection is already broken
                    pass
                raise TransientStoreError(f"database unavailable: {exc}") from exc
            raise RejectedError(str(exc).strip()) from exc
        return False


def _bound(database: peewee.Database) -> type[AuditLog]:
    """A subclass of AuditLog bound to ``database``, so several stores can live in one process."""

    meta = type("Meta", (), {"database": database, "table_name": TABLE_NAME})
    return type("AuditLog", (AuditLog,), {"Meta": meta, "__module__": __name__})
