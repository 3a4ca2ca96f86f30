"""The write path of a web process: an event to Redis in one round trip, and the fallbacks when
that cannot be (the overflow policy, write-through while the breaker is open, the spool as the
last resort), plus ``audit.critical``'s synchronous path."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import redis

from flask_audit import safety
from flask_audit.errors import AuditError, AuditWriteError, ReplicationShortfall
from flask_audit.events.event import AuditEvent, decode_entry
from flask_audit.ingest.counts import PendingCounts

if TYPE_CHECKING:
    from flask_audit.runtime import AuditRuntime


class WritePath:
    """One app's write path; its collaborators (clients, queue, store) come from the runtime,
    created lazily there."""

    def __init__(self, runtime: AuditRuntime) -> None:
        self.runtime = runtime
        self.counts = PendingCounts(lambda: runtime.metrics, runtime.breaker)
        self._replay_lock = threading.Lock()

    def submit(self, entry: bytes) -> None:
        """Queue one event's entry (or buffer it, in buffered mode), else write it through, else
        spool it; never raises. Where it went shows in the counters (/metrics)."""
        if self.runtime.config.buffered:
            self.runtime.buffer.add(entry)
            return
        self.push_entries([entry])

    def push_entries(self, entries: list[bytes]) -> None:
        """Queue ``entries`` in one round trip; what the cap refuses follows the overflow policy,
        and when Redis is down they are written through or spooled. Never raises."""
        if self.runtime.breaker.allow():
            try:
                accepted = self.runtime.push(entries)
            except ReplicationShortfall as short:
                # In Redis, but a failover now could lose it: stored now as well (the drain's
                # insert skips an event_id already stored). Until the breaker's next probe,
                # events go straight to the database.
                self.runtime.breaker.record_failure()
                safety.swallowed(short, "redis replication")
                self._write_through(entries[: short.accepted], counter="unreplicated")
                self._overflow(entries[short.accepted :])
                return
            except redis.RedisError as exc:
                self.runtime.breaker.record_failure()
                safety.swallowed(exc, "redis push")
            else:
                if self.runtime.breaker.record_success():
                    self._replay_spool_in_background()
                if accepted == len(entries):
                    self.counts.flush()
                else:
                    self._overflow(entries[accepted:])
                return
        self._write_through(entries, counter="write_through")

    def _overflow(self, refused: list[bytes]) -> None:
        """What the queue's cap refused: written through ('direct'), else the queue counted it dropped."""
        if refused and self.runtime.config.overflow_policy == "direct":
            self._write_through(refused, counter="overflow")

    def write_critical(self, event: AuditEvent) -> None:
        """Store a critical event before returning: the database, else the priority list, else
        the spool. Raises ``AuditWriteError`` only when all three fail."""
        errors: list[str] = []
        try:
            self.runtime.store.insert([event])
            self.counts.add("critical")
            return
        except AuditError as exc:
            errors.append(f"database: {_one_line(exc)}")
        entry = event.to_entry()
        try:
            self.runtime.queue.push_priority(entry)
            self.counts.add("critical_fallback")
            return
        except redis.RedisError as exc:
            self.runtime.breaker.record_failure()
            errors.append(f"redis: {_one_line(exc)}")
        try:
            self.runtime.spool.append(entry)
            self.counts.add("spooled")
            return
        except OSError as exc:
            errors.append(f"spool: {_one_line(exc)}")
        raise AuditWriteError(f"critical event {event.event_id} not stored: " + "; ".join(errors))

    def deliver(self, entries: list[bytes]) -> None:
        """Queue spooled entries, writing through whatever the cap refuses; raises when neither
        Redis nor the database takes them (the spool keeps them)."""
        accepted = self.runtime.background_queue.push(entries)
        rest = entries[accepted:]
        if rest and self.runtime.config.overflow_policy == "direct":
            self.runtime.store.write_batch([decode_entry(raw) for raw in rest])
            self.counts.add("overflow", len(rest))
        # "drop": the queue's cap script counted what it refused, as for any other push

    def replay_spool(self) -> int:
        """Deliver whatever the spool holds; returns how many entries were delivered."""
        with self._replay_lock:
            return self.runtime.spool.replay(self.deliver)

    def _replay_spool_in_background(self) -> None:
        if os.path.exists(self.runtime.spool.path):
            threading.Thread(target=self._replay_quietly, name="audit-spool-replay", daemon=True).start()

    def _replay_quietly(self) -> None:
        try:
            self.replay_spool()
        except Exception as exc:  # the spool keeps what was not delivered
            safety.swallowed(exc, "spool replay")

    def _write_through(self, entries: list[bytes], counter: str) -> None:
        try:
            self.runtime.store.write_batch([decode_entry(raw) for raw in entries])
        except AuditError as exc:
            safety.swallowed(exc, "database write-through")
            self.spool_entries(entries)
            return
        self.counts.add(counter, len(entries))

    def spool_entries(self, entries: list[bytes]) -> None:
        """The last resort: the local spool file; logged at ERROR with the events if even that fails."""
        try:
            for entry in entries:
                self.runtime.spool.append(entry)
        except OSError as exc:
            safety.swallowed(exc, "spool append")
            safety.logger.error("flask_audit: event lost, no store would take it: %r", entries)
            return
        self.counts.add("spooled", len(entries))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
