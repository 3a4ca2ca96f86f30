"""Where a stream has got to: the last row id delivered, kept in ``audit_stream_cursors`` so a
restart (or another worker taking over) goes on from there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from flask_audit.errors import StreamCursorMoved
from flask_audit.storage.ddl import STREAM_CURSORS_TABLE, stream_cursors_table_sql
from flask_audit.storage.store import AuditStore


@dataclass(frozen=True)
class Cursor:
    name: str
    last_id: int
    delivered: int
    updated_at: str


def ensure_table(store: AuditStore) -> None:
    """Create the cursors' table if ``flask audit migrate`` has not (idempotent)."""
    with store.translate():
        store.database.execute_sql(stream_cursors_table_sql())


def read(store: AuditStore, name: str) -> Cursor:
    """The stream's cursor; a new stream starts before the first row."""
    with store.translate():
        found = store.database.execute_sql(
            f"SELECT name, last_id, delivered, updated_at FROM {STREAM_CURSORS_TABLE}"
            f" WHERE name = {store.database.param}",
            (name,),
        ).fetchone()
    return Cursor(*found) if found else Cursor(name, 0, 0, "")


def advance(store: AuditStore, previous: Cursor, last_id: int, count: int) -> Cursor:
    """Move the cursor from ``previous`` to ``last_id``; only if nobody moved it meanwhile (a
    sender that lost its lock cannot move it back). Returns the new cursor."""
    now = datetime.now(timezone.utc).isoformat()
    mark = store.database.param
    with store.translate(), store.database.atomic():
        if previous.updated_at == "":
            store.database.execute_sql(
                f"INSERT INTO {STREAM_CURSORS_TABLE} (name, last_id, delivered, updated_at)"
                f" VALUES ({mark}, 0, 0, {mark}) ON CONFLICT (name) DO NOTHING",
                (previous.name, now),
            )
        moved = store.database.execute_sql(
            f"UPDATE {STREAM_CURSORS_TABLE} SET last_id = {mark}, delivered = delivered + {mark},"
            f" updated_at = {mark} WHERE name = {mark} AND last_id = {mark}",
            (last_id, count, now, previous.name, previous.last_id),
        ).rowcount
    if moved != 1:
        raise StreamCursorMoved(
            f"stream {previous.name!r}: the cursor moved past {previous.last_id} meanwhile"
        )
    return Cursor(previous.name, last_id, previous.delivered + count, now)
