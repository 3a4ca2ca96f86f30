"""The outbox: change events written in the application's own transaction, then relayed to the
audit pipeline by the workers.

A change and its record commit together or not at all: the record is a row of ``audit_outbox``
in the application's database, inserted by the same transaction (a savepoint that rolls back
takes its rows with it). A worker thread moves committed rows on (``relay``): it hands them to
the write path (the Redis queue, else the audit database, as ``audit.log`` would) and deletes
them in one transaction. A crash between the two hands them over again; the audit table keeps
one row per event_id, so nothing is lost and nothing is stored twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from flask_audit.errors import AuditValidationError
from flask_audit.events import schema
from flask_audit.events.event import build_event
from flask_audit.pipeline.drain import failure_record

if TYPE_CHECKING:
    from flask_audit.runtime import AuditRuntime

logger = logging.getLogger(__name__)

OUTBOX_TABLE = "audit_outbox"
#: rows moved per transaction
RELAY_BATCH = 500

_metadata = sa.MetaData()
outbox = sa.Table(
    OUTBOX_TABLE,
    _metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("entry", sa.Text(), nullable=False),
)
_CLIENT = {f.name for f in schema.CLIENT_TEXT}


def create_outbox(connection: sa.Connection) -> None:
    outbox.create(connection, checkfirst=True)


def rebuild(raw: str, runtime: AuditRuntime) -> bytes:
    """The queue entry of an outbox row, validated and repaired as ``audit.log`` would (rows a
    trigger wrote have seen neither the redaction keys nor the repairs)."""
    data = orjson.loads(raw)
    fields = {name: data[name] for name in _CLIENT if data.get(name) is not None}
    event = build_event(
        data["event_type"],
        event_id=data["event_id"],
        created_at=datetime.fromisoformat(data["created_at"]),
        event_category=data.get("event_category", "info"),
        outcome=data.get("outcome", "success"),
        metadata=data.get("metadata"),
        max_metadata_bytes=runtime.config.max_metadata_bytes,
        redact_keys=runtime.config.redact_keys,
        **fields,
    )
    return event.to_entry()


def relay(engine: sa.Engine, runtime: AuditRuntime, limit: int = RELAY_BATCH) -> int:
    """Move up to ``limit`` committed outbox rows to the audit pipeline; returns how many.
    Raises when neither Redis nor the audit database takes them (the rows stay)."""
    with engine.begin() as conn:
        query = sa.select(outbox.c.id, outbox.c.entry).order_by(outbox.c.id).limit(limit)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)  # several workers share the outbox
        rows = conn.execute(query).all()
        if not rows:
            return 0
        entries = []
        for row_id, raw in rows:
            try:
                entries.append(rebuild(raw, runtime))
            except (AuditValidationError, ValueError, KeyError, TypeError) as exc:
                # not an event: kept in the failed list with its reason, never dropped silently
                record = failure_record(raw.encode(), f"outbox row {row_id}: {exc}", attempts=1)
                runtime.background_redis.lpush(runtime.config.failed_key, record)
        if entries:
            runtime.write_path.deliver(entries)
        conn.execute(outbox.delete().where(outbox.c.id.in_([row_id for row_id, _ in rows])))
    return len(rows)


def relay_all(engines: Iterable[sa.Engine], runtime: AuditRuntime) -> int:
    """Relay every engine's outbox until it is empty."""
    moved = 0
    for engine in engines:
        while True:
            count = relay(engine, runtime)
            moved += count
            if count < RELAY_BATCH:
                break
    return moved


class OutboxRelay:
    """The loop a worker process runs in a thread: relay, then wait ``interval`` seconds."""

    def __init__(
        self, engines: Callable[[], list[sa.Engine]], runtime: AuditRuntime, interval: float
    ) -> None:
        self.engines = engines
        self.runtime = runtime
        self.interval = interval

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                relay_all(self.engines(), self.runtime)
            except Exception as exc:  # Redis and the database both down, or the app's database
                logger.warning("audit outbox relay: %s; retrying", exc)
            stop.wait(self.interval)


def entry_json(data: dict[str, Any]) -> str:
    """An outbox row's text: values JSON has no type for (Decimal, ...) as their text."""
    return orjson.dumps(data, default=str).decode()
