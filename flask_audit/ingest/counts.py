"""Counters the write path keeps (overflow, write-through, spooled, critical) that must survive a
Redis outage: they wait in memory and go to Redis, in one round trip, with the next success."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import redis

from flask_audit import safety
from flask_audit.ingest.breaker import CircuitBreaker
from flask_audit.monitoring.metrics import Metrics


class PendingCounts:
    def __init__(self, metrics: Callable[[], Metrics], breaker: CircuitBreaker) -> None:
        self._metrics = metrics  # a getter: the Redis client is created on first use
        self._breaker = breaker
        self._unsent: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        """Count in Redis; while Redis is down the count waits in memory for the next success."""
        with self._lock:
            self._unsent[name] += amount
        if not self._breaker.is_open:  # otherwise the next successful push flushes them
            self.flush()

    def flush(self) -> None:
        """Send what waits, in one round trip; keep it when Redis refuses."""
        if not self._unsent:
            return
        with self._lock:
            counts, self._unsent = self._unsent, Counter()
        try:
            self._metrics().incr(counts)
        except redis.RedisError as exc:
            self._breaker.record_failure()
            safety.swallowed(exc, "redis metrics")
            with self._lock:
                self._unsent.update(counts)
