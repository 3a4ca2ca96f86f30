"""The JSON-lines export on PostgreSQL, made by the server: each row's JSON line is built in
SQL, as the Python path would write it, so no row becomes a Python object.

The export is cut into chunks of about ``CHUNK_ROWS`` rows by created_at, and ``WORKERS`` chunks
are made at once, each by one query on a connection of its own that returns the chunk's lines
already joined (``string_agg``): one round trip a chunk instead of one per row, which is what
lets the threads run side by side (a per-row COPY hands the GIL back and forth a million times).
Chunks are written in order as they complete; at most ``WORKERS + 1`` are held at once, so
memory stays bounded whatever the size of the export.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import Any, BinaryIO

import peewee
import psycopg2

from flask_audit.errors import RejectedError, TransientStoreError
from flask_audit.events import schema
from flask_audit.storage.query import Filters, _where
from flask_audit.storage.store import AuditStore

#: ``datetime.isoformat()`` of the UTC time: microseconds only when there are any
_ISO = """replace(to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), '.000000+', '+')"""
#: rows per chunk of a parallel export, and chunks made at once
CHUNK_ROWS = 25_000
WORKERS = 3


def _line() -> str:
    """One row's JSON line as SQL text concatenation, in ``to_dict``'s order (the id, then every
    declared field): cheaper for the server than ``row_to_json``. Text is escaped by two
    ``replace`` calls (backslash, quote) unless the row holds a control character (a line break
    of a description, or a row some other tool wrote), when ``to_json`` escapes it all; the
    metadata is JSONB's own text; a NULL is ``null``."""
    text = [f.name for f in schema.FIELDS if f.type not in ("json", "uuid", "timestamp")]
    guard = "concat(" + ", ".join(f'"t1"."{name}"' for name in text) + ") ~ '[\\x01-\\x1f]'"

    def line(escape: Callable[[str], str]) -> str:
        parts = ['\'{"id":\' || "t1"."id"']
        for field in schema.FIELDS:
            column = f'"t1"."{field.name}"'
            if field.name == "created_at":
                value = "'\"' || " + _ISO.format(c=column) + " || '\"'"
            elif field.type == "json":
                value = f"coalesce({column}::text, 'null')"
            elif field.type == "uuid":
                value = "'\"' || " + column + " || '\"'"
            else:
                value = escape(column)
            parts.append(f"',\"{field.name}\":' || {value}")
        return " || ".join(parts) + " || '}'"

    def fast(column: str) -> str:
        return f"""coalesce('"' || replace(replace({column}, '\\', '\\\\'), '"', '\\"') || '"', 'null')"""

    def full(column: str) -> str:
        return f"coalesce(to_json({column})::text, 'null')"

    return f"CASE WHEN {guard} THEN {line(full)} ELSE {line(fast)} END"


def chunk_sql(store: AuditStore, filters: Filters) -> tuple[str, list[Any]]:
    """The query of one chunk: its JSON lines joined by newlines, in created_at order, and how
    many there are."""
    model = store.model
    table = model._meta.table_name
    order = '"t1"."created_at", "t1"."id"'
    query = model.select(
        peewee.SQL(f"string_agg({_line()}, E'\\n' ORDER BY {order})"), peewee.fn.COUNT(peewee.SQL("*"))
    ).from_(peewee.SQL(f'"{table}" AS "t1"'))
    clauses = _where(model, filters)
    if clauses:
        query = query.where(*clauses)
    sql, params = query.sql()
    return sql, list(params)


def copy_jsonl(
    store: AuditStore, filters: Filters, out: BinaryIO, progress: Callable[[int], Any] = lambda n: None
) -> int:
    """Write the matching rows to ``out`` as JSON lines, in created_at order; returns how many."""
    written = 0
    connections = _Connections(store.url)
    try:
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="audit-export") as pool:
            waiting: deque[Future[tuple[bytes, int]]] = deque()
            start: datetime | None = None
            for end in itertools.chain(cuts(store, filters), [None]):  # cuts found as chunks run
                chunk = _chunk(filters, start, end)
                waiting.append(pool.submit(_lines, connections, *chunk_sql(store, chunk)))
                start = end
                if len(waiting) > WORKERS:  # at most WORKERS + 1 chunks exist at once
                    written += _drain(waiting.popleft(), out, progress)
            while waiting:
                written += _drain(waiting.popleft(), out, progress)
    finally:
        connections.close()
    return written


def cuts(store: AuditStore, filters: Filters) -> Iterator[datetime]:
    """created_at values that cut the matching rows into chunks of about ``CHUNK_ROWS``, found
    one after the other, each by an index range scan of one chunk, while the chunks before it are
    being made. A cut is a time: rows of equal time stay in one chunk, so each row is in one."""
    model = store.model
    since = filters.since
    while True:
        narrowed = _where(model, replace(filters, since=since))
        query = model.select(model.created_at).order_by(model.created_at).offset(CHUNK_ROWS).limit(1)
        with store.translate():
            found = query.where(*narrowed).scalar() if narrowed else query.scalar()
            if found is not None and since is not None and model.created_at.python_value(found) <= since:
                later = model.select(model.created_at).where(*narrowed, model.created_at > since)
                found = later.order_by(model.created_at).limit(1).scalar()  # past a long run of ties
        if found is None:
            return
        since = model.created_at.python_value(found)
        yield since


def _chunk(filters: Filters, start: datetime | None, end: datetime | None) -> Filters:
    """``filters`` narrowed to [start, end): the chunks partition the rows, ties included."""
    return replace(filters, since=start or filters.since, until=end or filters.until)


def _lines(connections: _Connections, sql: str, params: list[Any]) -> tuple[bytes, int]:
    """One chunk's lines (joined by newlines, UTF-8) and their count, by one query on this
    thread's connection."""
    try:
        with connections.get().cursor() as cursor:
            cursor.execute(sql, params)
            text, rows = cursor.fetchone()
    except psycopg2.OperationalError as exc:
        raise TransientStoreError(f"database unavailable: {exc}".strip()) from exc
    except psycopg2.Error as exc:
        raise RejectedError(str(exc).strip()) from exc
    return (text if rows else b""), rows


class _Connections:
    """One connection per export thread, opened on first use, all closed at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.local = threading.local()
        self.opened: list[Any] = []
        self.lock = threading.Lock()

    def get(self) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            try:
                conn = psycopg2.connect(self.url)
            except psycopg2.OperationalError as exc:
                raise TransientStoreError(f"database unavailable: {exc}".strip()) from exc
            conn.autocommit = True
            # the chunk's text comes back as the bytes the server sent: no decoding, no re-encoding
            psycopg2.extensions.register_type(psycopg2.extensions.BYTES, conn)
            with conn.cursor() as cursor:
                cursor.execute("SET jit = off")  # compiling the expressions costs more than it saves
            self.local.conn = conn
            with self.lock:
                self.opened.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.opened:
            conn.close()


def _drain(future: Future[tuple[bytes, int]], out: BinaryIO, progress: Callable[[int], Any]) -> int:
    data, rows = future.result()
    if rows:
        out.write(data)
        out.write(b"\n")
    progress(rows)
    return rows
