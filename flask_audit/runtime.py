"""Per-app state built by ``init_app``: clients, queue, store, and the write path with fallbacks."""

from __future__ import annotations

import os
import threading
from collections import Counter
from functools import cached_property

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_audit import safety
from flask_audit.config import AuditConfig
from flask_audit.errors import AuditError, AuditWriteError
from flask_audit.events.event import AuditEvent, decode_entry
from flask_audit.ingest.breaker import CircuitBreaker
from flask_audit.ingest.buffer import EventBuffer
from flask_audit.ingest.spool import Spool
from flask_audit.monitoring.metrics import Metrics
from flask_audit.queue.embedded import embedded_redis_url
from flask_audit.queue.redis_queue import AuditQueue
from flask_audit.storage.store import AuditStore

#: seconds; background processes (worker, clock, CLI) may wait longer on Redis than a request
BACKGROUND_REDIS_TIMEOUT = 10.0


class AuditRuntime:
    """Everything one app's audit log needs at run time, created lazily on first use."""

    def __init__(self, config: AuditConfig, redis_client: redis.Redis | None = None) -> None:
        self.config = config
        self._given_redis = redis_client
        self.breaker = CircuitBreaker(config.breaker_cooldown)
        self.spool = Spool(config.spool_path)
        self._unsent_counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._replay_lock = threading.Lock()

    # -- collaborators -------------------------------------------------------------------------

    @cached_property
    def redis_url(self) -> str:
        if self.config.redis_url:
            return self.config.redis_url
        return embedded_redis_url(os.path.join(self.config.instance_path, "audit-redis.db"))

    @cached_property
    def redis(self) -> redis.Redis:
        """The request path's client: short timeouts, no retries (the breaker decides)."""
        if self._given_redis is not None:
            return self._given_redis
        return redis.Redis.from_url(
            self.redis_url,
            socket_timeout=self.config.redis_timeout,
            socket_connect_timeout=self.config.redis_timeout,
            retry=Retry(NoBackoff(), 0),
        )

    @cached_property
    def background_redis(self) -> redis.Redis:
        """The client of workers, the clock and the CLI, which can afford to wait."""
        if self._given_redis is not None:
            return self._given_redis
        return redis.Redis.from_url(
            self.redis_url,
            socket_timeout=BACKGROUND_REDIS_TIMEOUT,
            socket_connect_timeout=BACKGROUND_REDIS_TIMEOUT,
            health_check_interval=30,
        )

    @cached_property
    def queue(self) -> AuditQueue:
        return AuditQueue(self.redis, self.config)

    @cached_property
    def background_queue(self) -> AuditQueue:
        return AuditQueue(self.background_redis, self.config)

    @cached_property
    def metrics(self) -> Metrics:
        """Counters as the request path and the monitoring routes see them (short timeouts)."""
        return Metrics(self.redis, self.config)

    @cached_property
    def background_metrics(self) -> Metrics:
        return Metrics(self.background_redis, self.config)

    @cached_property
    def store(self) -> AuditStore:
        return AuditStore(self.config.database_url, partitioned=self.config.partitioning == "monthly")

    # -- the write path ------------------------------------------------------------------------

    @cached_property
    def buffer(self) -> EventBuffer:
        return EventBuffer(
            self.push_entries, self.config.buffer_flush_ms / 1000, self.config.buffer_max_events
        )

    def submit(self, event: AuditEvent) -> str:
        """Queue one event (or buffer it, in buffered mode), else write it through, else spool
        it; never raises. Returns where it went: queued, buffered, dropped, stored, spooled or
        lost (the disk refused too)."""
        if self.config.buffered:
            self.buffer.add(event.to_entry())
            return "buffered"
        return self.push_entries([event.to_entry()])

    def push_entries(self, entries: list[bytes]) -> str:
        """Queue ``entries`` in one round trip; what the cap refuses follows the overflow policy,
        and when Redis is down they are written through or spooled. Never raises."""
        if self.breaker.allow():
            try:
                accepted = self.queue.push(entries)
            except redis.RedisError as exc:
                self.breaker.record_failure()
                safety.swallowed(exc, "redis push")
            else:
                if self.breaker.record_success():
                    self._replay_spool_in_background()
                if accepted == len(entries):
                    self._flush_counts()
                    return "queued"
                if self.config.overflow_policy == "drop":
                    return "dropped"
                return self._write_through(entries[accepted:], counter="overflow")
        return self._write_through(entries, counter="write_through")

    def write_critical(self, event: AuditEvent) -> str:
        """Store a critical event before returning: the database, else the priority list, else
        the spool. Raises ``AuditWriteError`` only when all three fail."""
        errors: list[str] = []
        try:
            self.store.insert([event])
            self._count("critical")
            return "stored"
        except AuditError as exc:
            errors.append(f"database: {_one_line(exc)}")
        entry = event.to_entry()
        try:
            self.queue.push_priority(entry)
            self._count("critical_fallback")
            return "queued"
        except redis.RedisError as exc:
            self.breaker.record_failure()
            errors.append(f"redis: {_one_line(exc)}")
        try:
            self.spool.append(entry)
            self._count("spooled")
            return "spooled"
        except OSError as exc:
            errors.append(f"spool: {_one_line(exc)}")
        raise AuditWriteError(f"critical event {event.event_id} not stored: " + "; ".join(errors))

    def deliver(self, entries: list[bytes]) -> None:
        """Queue spooled entries, writing through whatever the cap refuses; raises when neither
        Redis nor the database takes them (the spool keeps them)."""
        accepted = self.background_queue.push(entries)
        rest = entries[accepted:]
        if rest and self.config.overflow_policy == "direct":
            self.store.write_batch([decode_entry(raw) for raw in rest])
            self._count("overflow", len(rest))

    def replay_spool(self) -> int:
        """Deliver whatever the spool holds; returns how many entries were delivered."""
        with self._replay_lock:
            return self.spool.replay(self.deliver)

    def _replay_spool_in_background(self) -> None:
        if os.path.exists(self.spool.path):
            threading.Thread(target=self._replay_quietly, name="audit-spool-replay", daemon=True).start()

    def _replay_quietly(self) -> None:
        try:
            self.replay_spool()
        except Exception as exc:  # the spool keeps what was not delivered
            safety.swallowed(exc, "spool replay")

    def _write_through(self, entries: list[bytes], counter: str) -> str:
        try:
            self.store.write_batch([decode_entry(raw) for raw in entries])
        except AuditError as exc:
            safety.swallowed(exc, "database write-through")
            return self.spool_entries(entries)
        self._count(counter, len(entries))
        return "stored"

    def spool_entries(self, entries: list[bytes]) -> str:
        """The last resort: the local spool file; logged at ERROR with the events if even that fails."""
        try:
            for entry in entries:
                self.spool.append(entry)
        except OSError as exc:
            safety.swallowed(exc, "spool append")
            safety.logger.error("flask_audit: event lost, no store would take it: %r", entries)
            return "lost"
        self._count("spooled", len(entries))
        return "spooled"

    # -- counters that must survive a Redis outage ---------------------------------------------

    def _count(self, name: str, amount: int = 1) -> None:
        """Count in Redis; while Redis is down the count waits in memory for the next success."""
        self._unsent_counts[name] += amount
        if not self.breaker.is_open:  # otherwise the next successful push flushes them
            self._flush_counts()

    def _flush_counts(self) -> None:
        if not self._unsent_counts:
            return
        with self._lock:
            counts, self._unsent_counts = self._unsent_counts, Counter()
        try:
            self.metrics.incr(counts)
        except redis.RedisError as exc:
            self.breaker.record_failure()
            safety.swallowed(exc, "redis metrics")
            with self._lock:
                self._unsent_counts.update(counts)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
