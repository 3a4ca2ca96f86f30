"""The sender: committed rows after the cursor, formatted, POSTed, then the cursor moved."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from flask_audit.config import AuditConfig
from flask_audit.formats import Formatter, formatter
from flask_audit.integrity.sealer import committed_watermark
from flask_audit.storage.ddl import STREAM_LOCK_KEY
from flask_audit.storage.query import to_dict
from flask_audit.storage.store import AuditStore
from flask_audit.streams import cursor as cursors
from flask_audit.streams.http import post
from flask_audit.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

#: the stream's name in audit_stream_cursors
STREAM_NAME = "default"
#: seconds between two looks at the table once the stream has caught up
POLL_SECONDS = 1.0
#: the first retry's wait; each failure in a row doubles it, up to AUDIT_STREAM_MAX_BACKOFF_SECONDS
FIRST_BACKOFF_SECONDS = 0.5
#: seconds a sender keeps the stream's lock before letting another worker take a turn
TURN_SECONDS = 30.0
#: the body of each format: NDJSON, or CloudEvents' batched mode (a JSON array)
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "ocsf": "application/x-ndjson",
    "splunk-hec": "application/json",
    "cloudevents": "application/cloudevents-batch+json",
}


@dataclass(frozen=True)
class Batch:
    first_id: int
    last_id: int
    count: int
    body: bytes


class StreamSender:
    """Sends one app's stored events to ``AUDIT_STREAM_URL``."""

    def __init__(
        self,
        store: AuditStore,
        config: AuditConfig,
        vocabulary: Vocabulary | None = None,
        record: Callable[[dict[str, Any]], None] = lambda fields: None,
    ) -> None:
        if not config.stream_url:
            raise ValueError("AUDIT_STREAM_URL is not set")
        self.store = store
        self.config = config
        self.url = config.stream_url
        self.shape: Formatter = formatter(
            config.stream_format, vocabulary, config.event_source or "/flask-audit"
        )
        self.record = record
        self.headers = {"Content-Type": CONTENT_TYPES[config.stream_format], "User-Agent": "flask-audit"}
        self._table_ready = False
        if config.stream_token:
            scheme = "Splunk" if config.stream_format == "splunk-hec" else "Bearer"
            self.headers["Authorization"] = f"{scheme} {config.stream_token}"

    # -- one batch ---------------------------------------------------------------------------

    def next_batch(self, after: int, up_to: int) -> Batch | None:
        """The committed rows after ``after`` (at most up to ``up_to``), formatted; None if none."""
        model = self.store.model
        query = (
            model.select()
            .where((model.id > after) & (model.id <= up_to))
            .order_by(model.id)
            .limit(self.config.stream_batch_size)
        )
        with self.store.translate():
            rows = [to_dict(row) for row in query]
        if not rows:
            return None
        shaped = [self.shape(row) for row in rows]
        if self.config.stream_format == "cloudevents":
            body = orjson.dumps(shaped)
        else:
            body = b"".join(orjson.dumps(item) + b"\n" for item in shaped)
        return Batch(rows[0]["id"], rows[-1]["id"], len(rows), body)

    def send(self, batch: Batch) -> None:
        """POST one batch; the batch id lets an endpoint drop a batch it has already seen."""
        headers = {**self.headers, "X-Audit-Batch": f"{STREAM_NAME}:{batch.first_id}-{batch.last_id}"}
        post(self.url, batch.body, headers, self.config.stream_timeout_seconds)

    def deliver(self, deadline: float) -> int:
        """Send batches until caught up or ``deadline``; returns the events delivered. Raises
        ``StreamDeliveryError`` (the endpoint) or a store error (the database) on the first failure."""
        delivered = 0
        if not self._table_ready:  # once per sender: a database not migrated yet still streams
            cursors.ensure_table(self.store)
            self._table_ready = True
        position = cursors.read(self.store, STREAM_NAME)
        watermark = committed_watermark(self.store)
        while time.monotonic() < deadline:
            batch = self.next_batch(position.last_id, watermark)
            if batch is None:
                break
            self.send(batch)
            # counted once the endpoint took them, before the cursor moves: a worker killed in
            # between re-sends the batch and counts it again (it was delivered twice), rather
            # than delivering it uncounted
            self.record({"delivered": batch.count})
            position = cursors.advance(self.store, position, batch.last_id, batch.count)
            delivered += batch.count
            if batch.count < self.config.stream_batch_size:
                watermark = committed_watermark(self.store)  # caught up to it: look again
        return delivered

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: take the lock, deliver, back off after a failure, poll when caught up."""
        failures = 0
        while not stop.is_set():
            wait = POLL_SECONDS
            try:
                with _Turn(self.store) as mine:
                    if mine:
                        delivered = self.deliver(time.monotonic() + TURN_SECONDS)
                        if failures:
                            logger.info("log stream recovered after %d failed attempts", failures)
                        failures = 0
                        if delivered:
                            wait = 0.0
            except Exception as exc:  # the endpoint or the database: keep the events, retry later
                failures += 1
                wait = self._backoff(failures)
                self.record({"failures": 1, "last_error": str(exc)[:500]})
                logger.warning("log stream: %s; retry %d in %.1f s", exc, failures, wait)
                self._reset_connection()
            stop.wait(wait)

    def _backoff(self, failures: int) -> float:
        ceiling = min(
            self.config.stream_max_backoff_seconds, FIRST_BACKOFF_SECONDS * 2 ** min(failures - 1, 30)
        )
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _reset_connection(self) -> None:
        try:
            self.store.database.close()
        except Exception:  # already gone
            pass


class _Turn:
    """The stream's lock for one turn (PostgreSQL: a session advisory lock, so only one worker
    sends; SQLite: one process writes at a time anyway, and the cursor refuses a stale move)."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store
        self.held = False

    def __enter__(self) -> bool:
        if not self.store.is_postgres:
            self.held = True
            return True
        with self.store.translate():
            self.held = bool(
                self.store.database.execute_sql(f"SELECT pg_try_advisory_lock({STREAM_LOCK_KEY})").fetchone()[
                    0
                ]
            )
        return self.held

    def __exit__(self, *exc_info: object) -> None:
        if self.held and self.store.is_postgres:
            try:
                with self.store.translate():
                    self.store.database.execute_sql(f"SELECT pg_advisory_unlock({STREAM_LOCK_KEY})")
            except Exception:  # the connection is gone, and the lock with it
                pass


def lag(store: AuditStore, now: datetime | None = None, cap: int = 100_000) -> tuple[float, int]:
    """(seconds since the oldest undelivered event was stored, undelivered events up to ``cap``);
    (0, 0) when the stream has caught up."""
    position = cursors.read(store, STREAM_NAME)
    model = store.model
    with store.translate():
        oldest = model.select(model.created_at).where(model.id > position.last_id).order_by(model.id).first()
        if oldest is None:
            return 0.0, 0
        waiting = model.select(model.id).where(model.id > position.last_id).limit(cap).count()
    moment = oldest.created_at
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, ((now or datetime.now(timezone.utc)) - moment).total_seconds()), waiting
