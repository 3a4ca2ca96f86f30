"""Batch insert on PostgreSQL with COPY, on the connection Peewee manages.

A batch is copied straight into audit_logs: one statement. Only when that hits a duplicate
event_id (a batch redelivered after a crash) is it copied again through a temporary staging table
and inserted with ON CONFLICT DO NOTHING. Peewee's insert_many caps a drain at about a quarter of
what COPY does here (see the README's performance table).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import orjson
import peewee

from flask_audit.events import schema
from flask_audit.events.line import ESCAPES
from flask_audit.storage.ddl import INSERT_LOCK_KEY

FIELDS = schema.NAMES

#: every insert transaction shares this lock; the sealer takes it alone for an instant, and then
#: knows that no row below the highest id it sees can still commit (see integrity.sealer)
_SHARE_INSERT_LOCK = f"SELECT pg_advisory_xact_lock_shared({INSERT_LOCK_KEY})"
#: SQLSTATE of a unique violation
UNIQUE_VIOLATION = "23505"
#: separators in one line of COPY text
TABS = len(FIELDS) - 1


def _timestamp(value: Any) -> str:
    return value if type(value) is str else value.isoformat()


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _compile_cells() -> Any:
    """A function from a row's ``get`` to its cells, one per declared field, compiled once from
    the declaration (as namedtuple and dataclasses do): a loop over the fields per row made the
    COPY text a fifth slower."""
    exprs = []
    for f in schema.FIELDS:
        expr = f"get({f.name!r}, {f.default!r})"
        if f.type == "timestamp":
            expr = f"_timestamp({expr})"
        elif f.type == "json":
            expr = f"_json({expr})"
        exprs.append(f"(NUL if (v := {expr}) is None else v)")
    source = f"lambda get: ({', '.join(exprs)},)"
    return eval(source, {"_timestamp": _timestamp, "_json": _json, "NUL": "\x00"})


_cells = _compile_cells()


def copy_text(rows: Sequence[Mapping[str, Any]]) -> io.StringIO:
    """Rows (column -> value, ``created_at`` a datetime or ISO text) in COPY's text format, one
    cell per declared field."""
    lines = []
    cells_of = _cells
    for row in rows:
        # NULL comes as NUL, which no value holds (validation refuses it), so that the rare line
        # needing escapes (a tab, newline or backslash in a value) is found in one look, and NULL
        # is written once for the whole batch below (translate leaves NUL alone).
        line = "\t".join(cells_of(row.get))
        if line.count("\t") != TABS or "\\" in line or "\n" in line or "\r" in line:
            line = "\t".join([c.translate(ESCAPES) for c in cells_of(row.get)])
        lines.append(line)
    lines.append("")
    return io.StringIO("\n".join(lines).replace("\x00", "\\N"))


def copy_insert(
    database: peewee.PostgresqlDatabase,
    table: str,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
) -> tuple[int, int]:
    """Insert ``rows``, skipping event_ids already stored; returns (rows inserted, statements).

    Raises Peewee's errors (the caller translates them), like a query through Peewee would.
    """
    return copy_source(database, table, lambda: copy_text(rows), conflict)


def copy_lines(
    database: peewee.PostgresqlDatabase, table: str, body: bytes, count: int, conflict: Sequence[str]
) -> tuple[int, int]:
    """``copy_insert`` of ``count`` lines of COPY text made elsewhere (version-2 queue entries).
    Raises ``ValueError`` when COPY took another number of lines than ``count`` (a line of
    ``\\.`` ends COPY's input early): the transaction is rolled back, nothing half-stored."""
    return copy_source(database, table, lambda: io.BytesIO(body), conflict, expected=count)


def copy_source(
    database: peewee.PostgresqlDatabase,
    table: str,
    source: Callable[[], IO[Any]],
    conflict: Sequence[str],
    expected: int | None = None,
) -> tuple[int, int]:
    """COPY what ``source`` gives (called again for the second try) into ``table``: straight in,
    or, when that hits a duplicate event_id, through a staging table and ON CONFLICT DO NOTHING."""
    columns = ", ".join(FIELDS)
    try:
        with database.atomic(), peewee.__exception_wrapper__:
            cursor = database.connection().cursor()
            cursor.execute(_SHARE_INSERT_LOCK)
            cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", source())
            _check_count(cursor.rowcount, expected)
            return cursor.rowcount, 1
    except peewee.IntegrityError as exc:
        if getattr(getattr(exc, "orig", None), "pgcode", None) != UNIQUE_VIOLATION:
            raise
    staging = f"{table}_staging"
    with database.atomic(), peewee.__exception_wrapper__:
        cursor = database.connection().cursor()
        cursor.execute(_SHARE_INSERT_LOCK)
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (LIKE {table} INCLUDING DEFAULTS)"
            " ON COMMIT DELETE ROWS"
        )
        cursor.copy_expert(f"COPY {staging} ({columns}) FROM STDIN", source())
        _check_count(cursor.rowcount, expected)
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging}"
            f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
        )
        return cursor.rowcount, 2


def _check_count(copied: int, expected: int | None) -> None:
    if expected is not None and copied != expected:
        raise ValueError(f"COPY took {copied} of {expected} lines")
