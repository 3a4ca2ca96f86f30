"""The JSON-lines export on PostgreSQL, made by the server: ``COPY (SELECT row_to_json(...))
TO STDOUT`` streams each row as the JSON text the Python path would write, so no row is built as
a Python object and memory stays flat at any size.

COPY's text format would double every backslash of the JSON; the CSV format with a quote and a
delimiter that JSON text never holds raw (``\\x01``, ``\\x02``: PostgreSQL escapes control
characters in JSON strings) passes each line through as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

import peewee

from flask_audit.events import schema
from flask_audit.storage.query import Filters, _where
from flask_audit.storage.store import AuditStore

#: ``datetime.isoformat()`` of the UTC time: microseconds only when there are any
_ISO = (
    """to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')"""
    " || CASE WHEN mod(date_part('microseconds', {c})::bigint, 1000000) = 0 THEN ''"
    " ELSE to_char({c} AT TIME ZONE 'UTC', '.US') END || '+00:00'"
)
_COPY_OPTIONS = "(FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')"


def _columns() -> str:
    """The lateral row's columns, in ``to_dict``'s order: the id, then every declared field."""
    parts = ['"t1"."id"']
    for field in schema.FIELDS:
        column = f'"t1"."{field.name}"'
        parts.append(f'{_ISO.format(c=column)} AS "created_at"' if field.name == "created_at" else column)
    return ", ".join(parts)


def copy_sql(store: AuditStore, filters: Filters) -> str:
    """The COPY statement of ``filters``, in created_at order, with its values bound."""
    model = store.model
    table = model._meta.table_name
    query = (
        model.select(peewee.SQL("row_to_json(r)::text"))
        .from_(peewee.SQL(f'"{table}" AS "t1" CROSS JOIN LATERAL (SELECT {_columns()}) AS r'))
        .order_by(model.created_at, model.id)
    )
    clauses = _where(model, filters)
    if clauses:
        query = query.where(*clauses)
    sql, params = query.sql()
    cursor = store.database.connection().cursor()
    try:
        select = cursor.mogrify(sql, params).decode()
    finally:
        cursor.close()
    return f"COPY ({select}) TO STDOUT {_COPY_OPTIONS}"


class _Counting:
    """The binary sink COPY writes to, counting the lines (rows) that pass."""

    def __init__(self, out: BinaryIO, progress: Callable[[int], Any]) -> None:
        self.out = out
        self.progress = progress
        self.rows = 0

    def write(self, data: bytes) -> int:
        lines = data.count(b"\n")
        self.rows += lines
        self.progress(lines)
        return self.out.write(data)


def copy_jsonl(
    store: AuditStore, filters: Filters, out: BinaryIO, progress: Callable[[int], Any] = lambda n: None
) -> int:
    """Write the matching rows to ``out`` as JSON lines; returns how many."""
    sink = _Counting(out, progress)
    conn = store.database.connection()
    with store.translate(), conn.cursor() as cursor:
        cursor.copy_expert(copy_sql(store, filters), sink, size=1 << 16)
    return sink.rows
