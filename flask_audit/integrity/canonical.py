"""The canonical form of a stored row: the bytes a seal's leaf hash is computed over.

Defined so that anyone can recompute it from the row, in any language:

- a JSON array, without whitespace, UTF-8 encoded, of the first twelve declared fields in
  declaration order (``flask_audit.events.schema.FIELDS``: event_id, created_at, event_type,
  event_category, user_id, resource_type, resource_id, description, metadata, ip_address,
  user_agent, request_id), then, only if a field declared later is set, one object of those
  fields that are set (so a row sealed before a field existed keeps its canonical form);
- ``event_id`` as a lowercase hyphenated UUID; ``created_at`` in UTC with six fractional digits and
  a ``Z`` (``2026-11-27T09:30:00.123456Z``); text fields as strings, or null;
- ``metadata`` as null or a JSON object whose keys are sorted by code point at every level,
  integers as digits, other numbers in their shortest round-trip form (``0.1``, ``1.0``,
  ``1e+21``); strings escape ``"``, ``\\``, and control characters (``\\n``, ``\\t``, ``\\b``,
  ``\\f``, ``\\r``, else ``\\u00XX``) and keep every other character as UTF-8 (RFC 8785 style).

Rows are read here straight from the table, without Peewee's per-row objects, so that sealing
and verification run at the speed of the database cursor.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson

from flask_audit.events import schema
from flask_audit.storage.ddl import TABLE_NAME
from flask_audit.storage.store import AuditStore

#: rows fetched per round trip while sealing or verifying
FETCH = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_METADATA = schema.NAMES.index("metadata")
#: the fields of the first canonical form; a field declared later joins a row's canonical form
#: only where it is set, in one trailing object, so that rows sealed before it existed still match
BASE_FIELDS = 12
_LATER = schema.NAMES[BASE_FIELDS:]
_loads, _dumps, _SORTED = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS


class CanonicalRow(NamedTuple):
    row_id: int
    #: microseconds since the epoch, UTC (kept with the leaf, so a purged row is recognised)
    created_us: int
    event_id: str
    canonical: bytes


def canonical_bytes(values: list[Any]) -> bytes:
    """The canonical form of one row's field values (declaration order, already normalised)."""
    return _dumps(values, option=_SORTED)


def timestamp_text(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def micros(moment: datetime) -> int:
    """Microseconds since the epoch, UTC."""
    delta = moment.astimezone(timezone.utc) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _pg_columns() -> str:
    """The columns as text, created_at as NULL: it comes as microseconds (cheaper than to_char)
    and is written out in Python."""
    columns = []
    for f in schema.FIELDS:
        if f.type in ("uuid", "json"):
            columns.append(f"{f.name}::text")
        elif f.type == "timestamp":
            columns.append("NULL")
        else:
            columns.append(f.name)
    return ", ".join(columns)


@functools.lru_cache(maxsize=64)
def _second_text(second: int) -> str:
    """The date and time of day of a second since the epoch, UTC, as ``timestamp_text`` writes
    them; cached, as consecutive rows mostly share their second."""
    return datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _timestamp_of(us: int) -> str:
    """``timestamp_text`` of a time in microseconds since the epoch."""
    return f"{_second_text(us // 1_000_000)}.{us % 1_000_000:06d}Z"


def _sqlite_moment(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _sqlite_uuid(value: str) -> str:
    return value if len(value) == 36 else str(uuid.UUID(value))


def fetch(store: AuditStore, after_id: int, up_to_id: int) -> list[tuple[Any, ...]]:
    """The raw records of the rows with ``after_id < id <= up_to_id``, in id order:
    ``canonical_function`` turns each into its canonical form. Safe to call from another
    thread (verification fetches the next seal's rows while it checks this one's)."""
    if store.is_postgres:
        epoch_us = "(extract(epoch FROM created_at) * 1000000)::bigint"
        sql = f"SELECT id, {epoch_us}, {_pg_columns()} FROM {TABLE_NAME}"
        sql += " WHERE id > %s AND id <= %s ORDER BY id"
    else:
        names = ", ".join(["id", "NULL", *schema.NAMES])
        sql = f"SELECT {names} FROM {TABLE_NAME} WHERE id > ? AND id <= ? ORDER BY id"
    with store.translate():
        return store.database.execute_sql(sql, (after_id, up_to_id)).fetchall()


def rows_between(store: AuditStore, after_id: int, up_to_id: int) -> Iterator[CanonicalRow]:
    """Rows with ``after_id < id <= up_to_id`` in id order, canonicalised."""
    to_canonical = canonical_function(store.is_postgres)
    for record in fetch(store, after_id, up_to_id):
        yield to_canonical(record)


def canonical_function(postgres: bool) -> Any:
    """record -> CanonicalRow for the records ``fetch`` returns from this kind of database."""
    return _canonical_pg if postgres else functools.partial(_canonical, postgres=False)


def _compile_pg() -> Any:
    """The PostgreSQL record's canonical form as one expression, compiled once from the
    declaration (as the COPY encoder is): a loop and a list per row cost a third of verifying."""
    values = []
    for index, f in enumerate(schema.FIELDS[:BASE_FIELDS]):
        cell = f"r[{index + 2}]"
        if f.type == "timestamp":  # _timestamp_of, written out: no call per row
            cell = 'f"{second(r[1] // 1000000)}.{r[1] % 1000000:06d}Z"'
        elif f.type == "json":
            cell = f"(None if {cell} is None else loads({cell}))"
        values.append(cell)
    later = [(name, f"r[{BASE_FIELDS + 2 + i}]") for i, name in enumerate(_LATER)]
    if later:
        present = " or ".join(f"{cell} is not None" for _, cell in later)
        pairs = ", ".join(f"({name!r}, {cell})" for name, cell in later)
        general = f"({{k: v for k, v in ({pairs},) if v is not None}},) if ({present}) else ()"
        # the usual row sets the first later field only (outcome): its object, without a comprehension
        (first, cell), rest = later[0], later[1:]
        only_first = " and ".join([f"{cell} is not None", *(f"{other} is None" for _, other in rest)])
        values.append(f"*(({{{first!r}: {cell}}},) if {only_first} else {general})")
    source = f"lambda r: Row(r[0], r[1], r[2], dumps([{', '.join(values)}], option=SORTED))"
    return eval(
        source,
        {"Row": CanonicalRow, "second": _second_text, "loads": _loads, "dumps": _dumps, "SORTED": _SORTED},
    )


def _canonical(record: tuple[Any, ...], postgres: bool) -> CanonicalRow:
    """The generic path: SQLite's records, and the reference the compiled PostgreSQL path
    matches (a test compares them)."""
    values = list(record[2:])
    if postgres:
        created_us = record[1]
        values[1] = _timestamp_of(created_us)
    else:
        values[0] = _sqlite_uuid(values[0])
        moment = _sqlite_moment(values[1])
        values[1], created_us = timestamp_text(moment), micros(moment)
    raw = values[_METADATA]
    if raw is not None:
        values[_METADATA] = _loads(raw)
    if _LATER:
        later = {
            name: value for name, value in zip(_LATER, values[BASE_FIELDS:], strict=True) if value is not None
        }
        values = values[:BASE_FIELDS] + ([later] if later else [])
    return CanonicalRow(record[0], created_us, values[0], _dumps(values, option=_SORTED))


def max_row_id(store: AuditStore) -> int:
    with store.translate():
        row = store.database.execute_sql(f"SELECT max(id) FROM {TABLE_NAME}").fetchone()
    return int(row[0] or 0)


def count_after(store: AuditStore, row_id: int) -> int:
    """Rows with an id above ``row_id`` (not sealed yet, when it is the last sealed row)."""
    p = store.database.param
    with store.translate():
        row = store.database.execute_sql(
            f"SELECT count(*) FROM {TABLE_NAME} WHERE id > {p}", (row_id,)
        ).fetchone()
    return int(row[0])


_canonical_pg = _compile_pg()
