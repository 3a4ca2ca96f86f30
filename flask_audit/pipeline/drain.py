"""Drain one batch: claim, decode, insert idempotently, isolate poison, settle."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any

import orjson

from flask_audit.errors import AuditValidationError, RejectedError, TransientStoreError
from flask_audit.events import line
from flask_audit.events.event import decode_entry
from flask_audit.queue.redis_queue import AuditQueue, Batch
from flask_audit.storage.store import AuditStore


@dataclass
class DrainResult:
    claimed: int = 0
    inserted: int = 0
    failed: int = 0
    #: events still waiting in the queue when this batch was claimed
    remaining: int = 0


def failure_record(raw: bytes, error: str, attempts: int, event_id: str | None = None) -> bytes:
    """What the failed list holds for one event: enough to understand it and to requeue it."""
    return orjson.dumps(
        {
            "id": uuid.uuid4().hex[:12],
            "event_id": event_id,
            "error": error,
            "failed_at": datetime.now(timezone.utc).isoformat(),
            "attempts": attempts,
            "entry": raw.decode("utf-8", errors="replace"),
        }
    )


def _outcomes(events: list[tuple[bytes, dict[str, Any]]], failures: list[bytes]) -> Counter[str]:
    """How many of the batch's stored events ended in each outcome (rejected ones left out)."""
    rows: Iterable[dict[str, Any]] = map(_ROW, events)
    if failures:
        rejected = {orjson.loads(record).get("event_id") for record in failures}
        rows = (row for row in rows if row["event_id"] not in rejected)
    return Counter(map(_OUTCOME, rows))  # counted in C: a generator step per row cost more


_ROW, _OUTCOME = itemgetter(1), itemgetter("outcome")


class Drainer:
    """Moves batches from the queue into the store."""

    def __init__(self, queue: AuditQueue, store: AuditStore) -> None:
        self.queue = queue
        self.store = store

    def drain_once(self, batch_size: int, on_claim: Callable[[Batch], None] | None = None) -> DrainResult:
        """Drain at most one batch. A transient database error puts the batch back at the head of
        the line and re-raises ``TransientStoreError`` so the caller can back off.

        ``on_claim`` is called once the batch is claimed, before it is written: the actor uses it
        to queue its successor, so the next batch is claimed while this one is in the database.
        """
        batch = self.queue.claim(batch_size)
        if batch is None:
            return DrainResult()
        if on_claim is not None:
            on_claim(batch)
        started = time.perf_counter()
        failures: list[bytes] = []
        try:
            stored = self._insert_lines(batch.entries) if self.store.is_postgres else None
            if stored is None:  # entry by entry: names and files each bad entry
                stored = self._insert_entries(batch.entries, failures)
        except TransientStoreError:
            self._give_back(batch)
            raise
        inserted, statements, outcomes = stored
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.queue.settle(
            batch,
            inserted=inserted,
            batch_ms=elapsed_ms,
            failures=failures,
            statements=statements,
            outcomes=outcomes if inserted else None,
        )
        return DrainResult(
            claimed=len(batch.entries), inserted=inserted, failed=len(failures), remaining=batch.remaining
        )

    def drain_all(self, batch_size: int) -> DrainResult:
        """Drain until the queue is empty (CLI, cron jobs, tests)."""
        total = DrainResult()
        while True:
            result = self.drain_once(batch_size)
            if result.claimed == 0:
                return total
            total.claimed += result.claimed
            total.inserted += result.inserted
            total.failed += result.failed

    def _insert_lines(self, entries: list[bytes]) -> tuple[int, int, Counter[str]] | None:
        """A batch of version-2 lines that pass ``line.checked_batch``, copied as they are:
        (inserted, statements, outcomes). None when a check or the database refuses the batch
        (nothing stored), so that it goes entry by entry."""
        checked = line.checked_batch(entries)
        if checked is None:
            return None
        body, outcomes = checked
        try:
            inserted, statements = self.store.write_lines(body, len(entries))
        except RejectedError:
            return None
        return inserted, statements, outcomes

    def _insert_entries(self, entries: list[bytes], failures: list[bytes]) -> tuple[int, int, Counter[str]]:
        """Decode each entry (filing the bad ones in ``failures``) and insert the rest, isolating
        what the database refuses: (inserted, statements, outcomes)."""
        events: list[tuple[bytes, dict[str, Any]]] = []
        for raw in entries:
            try:
                events.append((raw, decode_entry(raw)))
            except AuditValidationError as exc:
                failures.append(failure_record(raw, str(exc), attempts=1))
        statements = [0]
        inserted = self._insert_isolating(events, failures, attempt=1, statements=statements)
        return inserted, statements[0], _outcomes(events, failures)

    def _insert_isolating(
        self,
        events: list[tuple[bytes, dict[str, Any]]],
        failures: list[bytes],
        attempt: int,
        statements: list[int],
    ) -> int:
        """Insert ``events``; when the database rejects the batch, bisect until the bad events
        are alone, insert the good ones, and file the bad ones in ``failures``."""
        if not events:
            return 0
        try:
            rows, used = self.store.write_batch([row for _, row in events])
            statements[0] += used
            return rows
        except RejectedError as exc:
            if len(events) == 1:
                raw, row = events[0]
                failures.append(failure_record(raw, str(exc), attempt, row["event_id"]))
                return 0
        middle = len(events) // 2
        return self._insert_isolating(
            events[:middle], failures, attempt + 1, statements
        ) + self._insert_isolating(events[middle:], failures, attempt + 1, statements)

    def _give_back(self, batch: Batch) -> None:
        try:
            self.queue.requeue(batch)
        except Exception:  # the reaper returns it after the visibility timeout
            pass
