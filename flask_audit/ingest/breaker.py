"""A circuit breaker for Redis on the request path: a dead server costs one fast failure."""

from __future__ import annotations

import threading
import time

#: seconds the breaker stays open at most, however long Redis has been down
MAX_COOLDOWN = 60.0


class CircuitBreaker:
    """Closed: calls go through. Open: calls are skipped until the cooldown passes, then one is
    let through; each failure in a row doubles the cooldown, up to ``MAX_COOLDOWN``."""

    def __init__(self, cooldown: float) -> None:
        self.base_cooldown = cooldown
        self._failures = 0
        self._retry_at = 0.0
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._failures > 0

    def allow(self) -> bool:
        """Whether to try the protected call now."""
        if self._failures == 0:
            return True
        with self._lock:
            if time.monotonic() >= self._retry_at:
                # Let one caller probe; the others keep skipping until it reports back.
                self._retry_at = time.monotonic() + self._cooldown()
                return True
            return False

    def record_success(self) -> bool:
        """Close the breaker; returns True when it was open (the protected side has recovered)."""
        if self._failures == 0:
            return False
        with self._lock:
            was_open, self._failures = self._failures > 0, 0
            return was_open

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._retry_at = time.monotonic() + self._cooldown()

    def _cooldown(self) -> float:
        return min(MAX_COOLDOWN, self.base_cooldown * 2 ** max(0, self._failures - 1))
