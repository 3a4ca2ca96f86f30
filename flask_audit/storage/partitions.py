"""Monthly range partitioning of audit_logs on PostgreSQL (AUDIT_PARTITIONING = "monthly").

Partitions are named audit_logs_pYYYYMM and hold [first of the month, first of the next) in UTC;
audit_logs_default catches anything outside them, so an insert never fails for want of a partition.
Retention drops whole partitions instead of deleting rows.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from flask_audit.events import schema
from flask_audit.storage.ddl import TABLE_NAME, index_name

if TYPE_CHECKING:  # the store calls into this module, never the other way round at run time
    from flask_audit.storage.store import AuditStore

#: months created ahead of the current one by the clock and by init-db
MONTHS_AHEAD = 2
DEFAULT_PARTITION = f"{TABLE_NAME}_default"
PARTITION_NAME = re.compile(rf"^{TABLE_NAME}_p(\d{{4}})(\d{{2}})$")


def partitioned_schema() -> str:
    """The partitioned table's DDL, from the field declaration; safe to run again."""
    columns = ",\n    ".join(f.column_sql(postgres=True) for f in schema.FIELDS)
    indexes = "\n".join(
        f"CREATE INDEX IF NOT EXISTS {index_name(suffix)} ON {TABLE_NAME} ({', '.join(cols)})"
        + (f" WHERE {where};" if where else ";")
        for suffix, cols, where in schema.INDEXES
    )
    return f"""
CREATE TABLE IF NOT EXISTS {TABLE_NAME} (
    id BIGSERIAL NOT NULL,
    {columns},
    PRIMARY KEY (id, created_at),
    UNIQUE (event_id, created_at)
) PARTITION BY RANGE (created_at);
{indexes}
CREATE TABLE IF NOT EXISTS {DEFAULT_PARTITION} PARTITION OF {TABLE_NAME} DEFAULT;
"""


def month_start(year: int, month: int) -> datetime:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=timezone.utc)


def partition_name(start: datetime) -> str:
    return f"{TABLE_NAME}_p{start.year:04d}{start.month:02d}"


def relation_kind(store: AuditStore, name: str) -> str | None:
    """PostgreSQL's kind of the relation ``name`` on the search path ('r' table, 'p' partitioned
    table, 'i' index, 'I' partitioned index), or None when there is none."""
    row = store.database.execute_sql(
        "SELECT c.relkind FROM pg_class c WHERE c.relname = %s AND pg_table_is_visible(c.oid)", (name,)
    ).fetchone()
    return row[0] if row else None


def is_partitioned(store: AuditStore) -> bool:
    return relation_kind(store, TABLE_NAME) == "p"


def create_partitioned_schema(store: AuditStore, now: datetime | None = None) -> None:
    """Create the partitioned table, its default partition and the months ahead; safe to rerun.

    Refuses to run over a plain audit_logs table: converting one is a migration to plan, not
    something init-db should do behind an operator's back.
    """
    if store.database.table_exists(TABLE_NAME) and not is_partitioned(store):
        raise RuntimeError(
            f"{TABLE_NAME} exists and is not partitioned: rename it, run init-db, then copy the rows"
            " over (INSERT INTO audit_logs SELECT * FROM the old table), or unset AUDIT_PARTITIONING."
        )
    with store.database.atomic():
        store.database.execute_sql(partitioned_schema())
    ensure_partitions(store, now)


def existing_partitions(store: AuditStore) -> dict[str, datetime]:
    """Monthly partitions by name, with the first instant each holds."""
    cursor = store.database.execute_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass",
        (TABLE_NAME,),
    )
    found = {}
    for (name,) in cursor.fetchall():
        match = PARTITION_NAME.match(name)
        if match:
            found[name] = month_start(int(match.group(1)), int(match.group(2)))
    return found


def ensure_partitions(store: AuditStore, now: datetime | None = None, ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the partitions of this month and the next ``ahead`` ones; returns those created.

    Rows that reached the default partition for such a month (the clock was down at the turn of
    the month) are moved into the new partition in the same transaction.
    """
    now = now or datetime.now(timezone.utc)
    have = existing_partitions(store)
    created = []
    for offset in range(ahead + 1):
        start = month_start(now.year, now.month + offset)
        name = partition_name(start)
        if name in have:
            continue
        end = month_start(start.year, start.month + 1)
        with store.database.atomic():
            store.database.execute_sql(
                f"CREATE TABLE {name} (LIKE {TABLE_NAME} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
            store.database.execute_sql(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE created_at >= %s AND created_at < %s"
                f" RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                (start, end),
            )
            store.database.execute_sql(
                f"ALTER TABLE {TABLE_NAME} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", (start, end)
            )
        created.append(name)
    return created


def drop_partitions_before(store: AuditStore, cutoff: datetime) -> tuple[list[str], int]:
    """Drop every monthly partition that ends at or before ``cutoff`` and delete the rows of the
    default partition older than it. Returns the partitions dropped and the rows deleted."""
    dropped = []
    for name, start in sorted(existing_partitions(store).items(), key=lambda item: item[1]):
        end = month_start(start.year, start.month + 1)
        if end <= cutoff:
            with store.database.atomic():
                store.database.execute_sql(f"ALTER TABLE {TABLE_NAME} DETACH PARTITION {name}")
                store.database.execute_sql(f"DROP TABLE {name}")
            dropped.append(name)
    cursor = store.database.execute_sql(f"DELETE FROM {DEFAULT_PARTITION} WHERE created_at < %s", (cutoff,))
    return dropped, cursor.rowcount
