"""Numbered schema migrations, each applied once and recorded in ``audit_schema_migrations``.

``migrate`` creates the latest schema on an empty database and applies what is pending on an
existing one, under a lock (PostgreSQL: an advisory lock; SQLite: a file lock beside the
database), so several processes may run it at once. Migrations take no lock that stops the drain
for long: columns are added nullable, and indexes are built ``CONCURRENTLY`` on PostgreSQL (per
partition, then attached, on a partitioned table).

To change the schema, declare the field in ``flask_audit/events/schema.py`` and append a
``Migration`` here, for example ``Migration(4, "outcome", lambda store: add_column(store,
schema.BY_NAME["outcome"]))``.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from flask_audit.events import schema
from flask_audit.storage.ddl import (
    CRITICAL_INDEX,
    CRITICAL_INDEX_COLUMNS,
    CRITICAL_INDEX_WHERE,
    MIGRATIONS_TABLE,
    TABLE_NAME,
    index_name,
    seals_index_sql,
    seals_table_sql,
    stream_cursors_table_sql,
)
from flask_audit.storage.partitions import (
    DEFAULT_PARTITION,
    existing_partitions,
    is_partitioned,
    relation_kind,
)
from flask_audit.storage.store import AuditStore

#: the key of the PostgreSQL advisory lock that serialises migrations
ADVISORY_LOCK_KEY = 0x41554449  # "AUDI"
#: seconds between two attempts at that lock
LOCK_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    apply: Callable[[AuditStore], None]


def _baseline(store: AuditStore) -> None:
    """audit_logs as release 0.1.0 created it: nothing to do on a table that exists."""


def _critical_index(store: AuditStore) -> None:
    create_index(store, CRITICAL_INDEX, CRITICAL_INDEX_COLUMNS, where=CRITICAL_INDEX_WHERE)


def _outcome_and_tenant(store: AuditStore) -> None:
    add_column(store, schema.BY_NAME["outcome"])
    add_column(store, schema.BY_NAME["tenant_id"])
    # the names a fresh table gets: Peewee's on a plain table, the declaration's on a partitioned one
    partitioned = store.is_postgres and is_partitioned(store)
    name = f"{TABLE_NAME}_tenant_id_created_at" if partitioned else "auditlog_tenant_id_created_at"
    create_index(store, name, "(tenant_id, created_at)")


def _seals_table(store: AuditStore) -> None:
    store.database.execute_sql(seals_table_sql(store.is_postgres))
    store.database.execute_sql(seals_index_sql())


def _stream_cursors(store: AuditStore) -> None:
    store.database.execute_sql(stream_cursors_table_sql())


def _seal_leaves_lz4(store: AuditStore) -> None:
    store.compress_seal_leaves()


#: the indexes migration 7 makes partial: (the new index's suffix in schema.INDEXES, the names the
#: full one had: Peewee's on a plain table, the declaration's on a partitioned one)
_NOW_PARTIAL = (
    ("by_user", ("auditlog_user_id_created_at", f"{TABLE_NAME}_user_id_created_at")),
    ("by_resource", ("auditlog_resource_type_resource_id", f"{TABLE_NAME}_resource")),
    ("by_tenant", ("auditlog_tenant_id_created_at", f"{TABLE_NAME}_tenant_id_created_at")),
)


def _partial_key_indexes(store: AuditStore) -> None:
    """The user, resource and tenant indexes keep only rows that have the key: each partial index
    is built (concurrently) before the full one it replaces is dropped, so queries always have one."""
    declared = {suffix: (columns, where) for suffix, columns, where in schema.INDEXES}
    for suffix, old_names in _NOW_PARTIAL:
        columns, where = declared[suffix]
        create_index(store, index_name(suffix), f"({', '.join(columns)})", where=where)
        for old in old_names:
            drop_index(store, old)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "audit_logs as release 0.1.0 created it", _baseline),
    Migration(2, "partial index on critical rows (the dashboard's latest critical events)", _critical_index),
    Migration(3, "audit_seals: the chain of seals over audit_logs (tamper evidence)", _seals_table),
    Migration(4, "outcome and tenant_id, and an index on (tenant_id, created_at)", _outcome_and_tenant),
    Migration(5, "audit_stream_cursors: how far each log stream has delivered", _stream_cursors),
    Migration(6, "new seals' leaves compressed with lz4 where PostgreSQL has it", _seal_leaves_lz4),
    Migration(7, "user, resource and tenant indexes hold only rows with that key", _partial_key_indexes),
)


@dataclass(frozen=True)
class Status:
    applied: dict[int, str]  # number -> when
    pending: list[Migration]


def status(store: AuditStore) -> Status:
    """Which migrations are applied (and when) and which are pending."""
    with store.translate():
        applied = _applied(store)
    return Status(applied, [m for m in MIGRATIONS if m.number not in applied])


def migrate(store: AuditStore) -> tuple[str, list[Migration]]:
    """Bring the schema up to date; returns ("created" | "migrated" | "current", applied now)."""
    with store.translate(), _lock(store):
        _ensure_record_table(store)
        if not store.database.table_exists(TABLE_NAME):
            store.create_schema()
            for migration in MIGRATIONS:
                _record(store, migration)
            return "created", list(MIGRATIONS)
        applied = _applied(store)
        done = []
        for migration in MIGRATIONS:
            if migration.number in applied:
                continue
            migration.apply(store)
            _record(store, migration)
            done.append(migration)
        return ("migrated" if done else "current"), done


# -- building blocks for migrations --------------------------------------------------------------


def add_column(store: AuditStore, field: schema.Field) -> None:
    """Add a declared field as a nullable column (a brief lock, no table rewrite)."""
    if field.nullable is False:
        raise ValueError(f"{field.name}: a column added to a table with rows must be nullable")
    columns = [c.name for c in store.database.get_columns(TABLE_NAME)]
    if field.name in columns:
        return
    store.database.execute_sql(f"ALTER TABLE {TABLE_NAME} ADD COLUMN {field.column_sql(store.is_postgres)}")


def create_index(store: AuditStore, name: str, columns: str, where: str | None = None) -> None:
    """Create an index without blocking writes: CONCURRENTLY on PostgreSQL (on a partitioned
    table: on the parent ONLY, then concurrently on each partition, then attached)."""
    predicate = f" WHERE {where}" if where else ""
    if not store.is_postgres:
        store.database.execute_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {TABLE_NAME} {columns}{predicate}")
        return
    if not is_partitioned(store):
        _concurrently(store, name, TABLE_NAME, columns, predicate)
        return
    store.database.execute_sql(f"CREATE INDEX IF NOT EXISTS {name} ON ONLY {TABLE_NAME} {columns}{predicate}")
    for partition in [*existing_partitions(store), DEFAULT_PARTITION]:
        child = f"{partition}_{name.removeprefix(TABLE_NAME + '_')}"[:63]
        _concurrently(store, child, partition, columns, predicate)
        attached = store.database.execute_sql(
            "SELECT 1 FROM pg_inherits WHERE inhrelid = %s::regclass AND inhparent = %s::regclass",
            (child, name),
        ).fetchone()
        if not attached:
            store.database.execute_sql(f"ALTER INDEX {name} ATTACH PARTITION {child}")


def drop_index(store: AuditStore, name: str) -> None:
    """Drop an index if it exists: CONCURRENTLY on a plain PostgreSQL table; a partitioned index
    (which PostgreSQL cannot drop concurrently) in one brief statement, with its partitions' own."""
    if not store.is_postgres:
        store.database.execute_sql(f"DROP INDEX IF EXISTS {name}")
        return
    kind = relation_kind(store, name)
    if kind is None:
        return
    concurrently = "" if kind == "I" else " CONCURRENTLY"  # 'I': a partitioned index
    store.database.execute_sql(f"DROP INDEX{concurrently} IF EXISTS {name}")


def _concurrently(store: AuditStore, name: str, table: str, columns: str, predicate: str) -> None:
    """CREATE INDEX CONCURRENTLY, replacing an invalid index a failed earlier attempt left."""
    row = store.database.execute_sql(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
        (name,),
    ).fetchone()
    if row is not None and row[0]:
        return
    if row is not None:
        store.database.execute_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    store.database.execute_sql(f"CREATE INDEX CONCURRENTLY {name} ON {table} {columns}{predicate}")


# -- the record ---------------------------------------------------------------------------------


def _ensure_record_table(store: AuditStore) -> None:
    store.database.execute_sql(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
        " number INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_at VARCHAR(40) NOT NULL)"
    )


def _applied(store: AuditStore) -> dict[int, str]:
    if not store.database.table_exists(MIGRATIONS_TABLE):
        return {}
    cursor = store.database.execute_sql(f"SELECT number, applied_at FROM {MIGRATIONS_TABLE} ORDER BY number")
    return {int(number): applied_at for number, applied_at in cursor.fetchall()}


def _record(store: AuditStore, migration: Migration) -> None:
    placeholder = store.database.param
    store.database.execute_sql(
        f"INSERT INTO {MIGRATIONS_TABLE} (number, name, applied_at) VALUES"
        f" ({placeholder}, {placeholder}, {placeholder})",
        (migration.number, migration.name, datetime.now(timezone.utc).isoformat(timespec="seconds")),
    )


@contextmanager
def _lock(store: AuditStore) -> Iterator[None]:
    """One migrating process at a time, whatever machine it runs on (PostgreSQL) or beside the
    database file (SQLite)."""
    if store.is_postgres:
        # Polled, not waited on: a backend blocked in pg_advisory_lock holds a snapshot, and the
        # lock holder's CREATE INDEX CONCURRENTLY would wait for it: a deadlock.
        while not store.database.execute_sql(
            "SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)
        ).fetchone()[0]:
            time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            store.database.execute_sql("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
        return
    path = store.url.removeprefix("sqlite:///")
    if not path or path == ":memory:":
        yield
        return
    with open(os.path.abspath(path) + ".migrate.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
