"""Batch insert on PostgreSQL with COPY, on the connection Peewee manages.

A batch is copied straight into audit_logs: one statement. Only when that hits a duplicate
event_id (a batch redelivered after a crash) is it copied again through a temporary staging table
and inserted with ON CONFLICT DO NOTHING. Peewee's insert_many caps a drain at about a quarter of
what COPY does here (see the README's performance table).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import orjson
import peewee

from .event import FIELDS, AuditEvent

#: SQLSTATE of a unique violation
UNIQUE_VIOLATION = "23505"
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def copy_text(events: Sequence[AuditEvent]) -> io.StringIO:
    """The events in COPY's text format, columns in ``FIELDS`` order."""
    lines = []
    for e in events:
        metadata = "\\N" if e.metadata is None else orjson.dumps(e.metadata).decode().translate(_ESCAPES)
        lines.append(
            "\t".join(
                (
                    e.event_id,
                    e.created_at.isoformat(),
                    _cell(e.event_type),
                    e.event_category,
                    _cell(e.user_id),
                    _cell(e.resource_type),
                    _cell(e.resource_id),
                    _cell(e.description),
                    metadata,
                    _cell(e.ip_address),
                    _cell(e.user_agent),
                    _cell(e.request_id),
                )
            )
        )
    lines.append("")
    return io.StringIO("\n".join(lines))


def _cell(value: str | None) -> str:
    return "\\N" if value is None else value.translate(_ESCAPES)


def copy_insert(
    database: peewee.PostgresqlDatabase, table: str, events: Sequence[AuditEvent], conflict: Sequence[str]
) -> tuple[int, int]:
    """Insert ``events``, skipping event_ids already stored; returns (rows inserted, statements).

    Raises Peewee's errors (the caller translates them), like a query through Peewee would.
    """
    columns = ", ".join(FIELDS)
    try:
        with database.atomic(), peewee.__exception_wrapper__:
            cursor = database.connection().cursor()
            cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", copy_text(events))
            return cursor.rowcount, 1
    except peewee.IntegrityError as exc:
        if getattr(getattr(exc, "orig", None), "pgcode", None) != UNIQUE_VIOLATION:
            raise
    staging = f"{table}_staging"
    with database.atomic(), peewee.__exception_wrapper__:
        cursor = database.connection().cursor()
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (LIKE {table} INCLUDING DEFAULTS)"
            " ON COMMIT DELETE ROWS"
        )
        cursor.copy_expert(f"COPY {staging} ({columns}) FROM STDIN", copy_text(events))
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging}"
            f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
        )
        return cursor.rowcount, 2
