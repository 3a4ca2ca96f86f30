"""Searching audit_logs: filters checked one by one, keyset cursors, newest-first pages and
oldest-first streams. Served from the indexes; no OFFSET anywhere."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import peewee

from flask_audit.errors import AuditValidationError
from flask_audit.events import schema
from flask_audit.events.event import CATEGORIES, OUTCOMES
from flask_audit.storage.store import AuditLog, AuditStore

#: filters matched by equality, each the column of the same name (from the field declaration)
EQUALITY_FILTERS = schema.FILTERS
#: rows per page when the caller does not say, and the most it may ask for
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


#: a free-text search without ``since`` looks this far back from ``until`` (or now): a search of
#: the description is a scan of the range, so the range is always bounded
TEXT_SEARCH_DAYS = 7


@dataclass
class Filters:
    equal: dict[str, str] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None
    #: words the description contains (case-insensitive)
    text: str | None = None


def parse_time(name: str, value: str) -> datetime:
    """ISO 8601; a time without an offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError):
        raise AuditValidationError(name, "must be an ISO 8601 date or time (years 1 to 9999)") from None


def parse_filters(args: Mapping[str, str]) -> Filters:
    """Filters from query-string-like arguments; raises ``AuditValidationError`` naming the filter."""
    filters = Filters()
    for name in EQUALITY_FILTERS:
        value = args.get(name)
        if value is not None and value != "":
            if len(value) > 255:
                raise AuditValidationError(name, "must be at most 255 characters")
            if not value.isprintable():
                raise AuditValidationError(name, "must not contain control characters")
            filters.equal[name] = value
    if filters.equal.get("event_category", "info") not in CATEGORIES:
        raise AuditValidationError("event_category", "must be one of info, warning, critical")
    if filters.equal.get("outcome", "success") not in OUTCOMES:
        raise AuditValidationError("outcome", "must be one of success, failure, denied")
    if args.get("since"):
        filters.since = parse_time("since", args["since"])
    if args.get("until"):
        filters.until = parse_time("until", args["until"])
    text = args.get("q")
    if text:
        if len(text) > 200:
            raise AuditValidationError("q", "must be at most 200 characters")
        if not text.isprintable():
            raise AuditValidationError("q", "must not contain control characters")
        filters.text = text
        if filters.since is None:
            filters.since = (filters.until or datetime.now(timezone.utc)) - timedelta(days=TEXT_SEARCH_DAYS)
    if filters.since and filters.until and filters.since > filters.until:
        raise AuditValidationError("since", "must not be after until")
    return filters


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit() and len(value) <= 6) or not 1 <= int(value) <= MAX_LIMIT:
        raise AuditValidationError("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def encode_cursor(row: AuditLog) -> str:
    payload = orjson.dumps([row.created_at.isoformat(), row.id])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[datetime, int]:
    """The (created_at, id) a cursor holds; anything else, however it was made, is a 400."""
    bad = AuditValidationError("cursor", "is not a cursor this API returned")
    if len(value) > 200 or not value.isascii():
        raise bad
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        created, row_id = decoded
        if type(created) is not str or type(row_id) is not int or not 0 <= row_id < 2**63:
            raise bad
        parsed = datetime.fromisoformat(created)
        if parsed.tzinfo is None:
            raise bad
        return parsed.astimezone(timezone.utc), row_id
    except (ValueError, TypeError, OverflowError):
        raise bad from None


def _where(model: type[AuditLog], filters: Filters) -> list[peewee.Expression]:
    clauses = [getattr(model, name) == value for name, value in filters.equal.items()]
    if filters.since:
        clauses.append(model.created_at >= filters.since)
    if filters.until:
        clauses.append(model.created_at < filters.until)
    if filters.text:
        clauses.append(model.description.contains(filters.text))
    return clauses


def count(store: AuditStore, filters: Filters) -> int:
    """How many rows match ``filters`` (the export's progress bar)."""
    model = store.model
    query = model.select()
    clauses = _where(model, filters)
    if clauses:
        query = query.where(*clauses)
    with store.translate():
        return query.count()


def page(
    store: AuditStore, filters: Filters, limit: int, cursor: str | None
) -> tuple[list[AuditLog], str | None]:
    """Newest first. The cursor is the (created_at, id) of the last row seen, so a page is stable
    under concurrent inserts (new rows sort before it) and costs an index range scan."""
    model = store.model
    clauses = _where(model, filters)
    if cursor:
        created, row_id = decode_cursor(cursor)
        clauses.append((model.created_at < created) | ((model.created_at == created) & (model.id < row_id)))
    query = model.select().order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    if clauses:
        query = query.where(*clauses)
    with store.translate():
        rows = list(query)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1]) if more and rows else None)


def stream(store: AuditStore, filters: Filters, chunk: int = 5000) -> Iterator[AuditLog]:
    """Oldest first, in constant memory: on PostgreSQL a server-side (named) cursor fetching
    ``chunk`` rows at a time, elsewhere the driver's own cursor."""
    model = store.model
    query = model.select().order_by(model.created_at, model.id)
    clauses = _where(model, filters)
    if clauses:
        query = query.where(*clauses)
    sql, params = query.sql()
    decode = [(name, model._meta.fields[name].python_value) for name in model._meta.sorted_field_names]
    rows = (
        _server_side(store, sql, params, chunk)
        if store.is_postgres
        else store.database.execute_sql(sql, params)
    )
    for values in rows:
        yield model(**{name: convert(value) for (name, convert), value in zip(decode, values, strict=True)})


def _server_side(store: AuditStore, sql: str, params: Any, chunk: int) -> Iterator[tuple]:
    """Rows of a named (server-side) cursor, ``chunk`` at a time. Peewee's connection runs in
    autocommit, where a named cursor is refused, so it is lent a read-only transaction."""
    conn = store.database.connection()
    autocommit = conn.autocommit
    conn.autocommit = False
    try:
        with conn.cursor(name="audit_export") as cursor:
            cursor.itersize = chunk
            cursor.execute(sql, params)
            yield from cursor
    finally:
        conn.rollback()
        conn.autocommit = autocommit


def to_dict(row: AuditLog) -> dict[str, Any]:
    """A row as the API and the JSONL export show it: its id, then every declared field."""
    data: dict[str, Any] = {"id": row.id}
    for name in schema.NAMES:
        data[name] = getattr(row, name)
    data["event_id"] = str(data["event_id"])
    data["created_at"] = data["created_at"].isoformat()
    return data
