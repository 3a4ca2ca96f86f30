"""The breaker on its own: one probe per cooldown, doubling, and what record_success reports."""

from __future__ import annotations

import time

from flask_audit.ingest.breaker import MAX_COOLDOWN, CircuitBreaker


def test_a_closed_breaker_allows_everything_and_reports_no_recovery():
    breaker = CircuitBreaker(0.05)
    assert breaker.allow() and breaker.allow()
    assert breaker.record_success() is False  # nothing to recover from


def test_after_the_cooldown_one_caller_probes_and_the_others_keep_skipping():
    breaker = CircuitBreaker(0.05)
    breaker.record_failure()
    assert breaker.allow() is False  # within the cooldown
    time.sleep(0.06)
    assert breaker.allow() is True  # the probe
    assert breaker.allow() is False  # everyone else waits for its answer
    assert breaker.record_success() is True and breaker.allow() is True  # recovered, closed


def test_each_failure_doubles_the_cooldown_up_to_the_cap():
    breaker = CircuitBreaker(1.0)
    cooldowns = []
    for _ in range(12):
        breaker.record_failure()
        cooldowns.append(round(breaker._retry_at - time.monotonic()))
    assert cooldowns[:4] == [1, 2, 4, 8] and max(cooldowns) == MAX_COOLDOWN
