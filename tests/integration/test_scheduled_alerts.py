"""Alerts through the path a user takes: the real `flask audit scheduler` process, no worker, a
backlog, and a webhook on loopback. This is the test that would have seen the alert job missing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import redis

from flask_audit.events.event import build_event
from tests.conftest import REDIS_URL
from tests.processes import python, wait_for
from tests.test_alerts import Hook


@pytest.fixture
def hook():
    """A webhook receiver on loopback, closed when the test ends."""
    receiver = Hook()
    yield receiver
    receiver.close()


def alert_env(service_env: dict[str, str], hook: Hook, **extra: str) -> dict[str, str]:
    """The environment of a clock that evaluates the rules every half second and posts to ``hook``."""
    return dict(service_env, AUDIT_ALERT_WEBHOOK_URL=hook.url, AUDIT_ALERT_INTERVAL_SECONDS="0.5", **extra)


def queue_backlog(key_prefix: str, events: int = 5) -> redis.Redis:
    """``events`` events waiting in the queue, pushed straight to Redis; returns the client."""
    client = redis.Redis.from_url(REDIS_URL)
    client.rpush(key_prefix + "queue", *[build_event("waiting").to_entry() for _ in range(events)])
    return client


def test_the_scheduler_alone_posts_a_signed_backlog_alert(service_env, spawn, key_prefix, hook):
    env = alert_env(
        service_env, hook, AUDIT_ALERT_WEBHOOK_SECRET="hook-secret", AUDIT_ALERT_QUEUE_THRESHOLD="3"
    )
    client = queue_backlog(key_prefix)
    clock = spawn("clock", python("-m", "flask", "audit", "scheduler"), env)
    wait_for(lambda: hook.received, 20, "the clock to POST the backlog alert")
    body, headers = hook.raw[0]
    alert = json.loads(body)
    assert alert["text"] == "🚨 CRITICAL: Audit queue backed up! Queue length: 5"
    assert (alert["rule"], alert["status"]) == ("queue_backed_up", "firing")
    expected = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
    assert headers["X-Audit-Signature"] == expected
    # The backlog clears (no worker: drained by hand), and the clock says so by itself.
    client.delete(key_prefix + "queue")
    wait_for(lambda: len(hook.received) >= 2, 20, "the resolved notice")
    assert hook.received[1]["status"] == "resolved"
    assert len(hook.received) == 2  # once per condition, not once per evaluation
    assert clock.alive()


def _app_on(make_app, key_prefix, pg_url, **options):
    return make_app(
        AUDIT_REDIS_URL=REDIS_URL, AUDIT_KEY_PREFIX=key_prefix, AUDIT_DATABASE_URL=pg_url, **options
    )


def test_high_failure_rate_and_dropped_events_alert_end_to_end(
    service_env, spawn, make_app, key_prefix, pg_url, hook
):
    """Events the database refuses (through a real worker) and events the full queue drops (under
    the drop policy) each reach the webhook as the original design's alert."""
    env = alert_env(
        service_env,
        hook,
        AUDIT_ALERT_FAILURES_PER_MINUTE="3",
        AUDIT_ALERT_DROPPED_THRESHOLD="0",
    )
    spawn("worker", python("-m", "dramatiq", "worker", "--processes", "1", "--threads", "2"), env)
    spawn("clock", python("-m", "flask", "audit", "scheduler"), env)
    app, audit = _app_on(make_app, key_prefix, pg_url, AUDIT_MAX_QUEUE_LENGTH=5, AUDIT_OVERFLOW_POLICY="drop")
    runtime = audit.runtime(app)
    runtime.queue.push([f"not an event {i}".encode() for i in range(5)])  # 5 failures > 3
    wait_for(lambda: runtime.queue.failed_length() == 5, 30, "the worker to file 5 failures")
    with app.app_context():
        for _ in range(40):  # a cap of 5: some are dropped before the worker drains them
            audit.log("burst")
    wait_for(
        lambda: {p["rule"] for p in hook.received} >= {"high_failure_rate", "events_dropped"},
        30,
        "both alerts",
    )
    texts = {p["rule"]: p["text"] for p in hook.received if p["status"] == "firing"}
    assert texts["high_failure_rate"] == "🚨 CRITICAL: High failure rate! Failures: 5/min"
    assert texts["events_dropped"].startswith("⚠️  WARNING: Events being dropped! Total dropped: ")


def test_the_cooldown_survives_a_change_of_leading_clock(service_env, spawn, key_prefix, hook):
    """Clock A alerts and dies; clock B takes the lease and does not alert again within the cooldown."""
    env = alert_env(service_env, hook, AUDIT_ALERT_QUEUE_THRESHOLD="3", AUDIT_ALERT_COOLDOWN_SECONDS="600")
    queue_backlog(key_prefix)
    first = spawn("clock-a", python("-m", "flask", "audit", "scheduler"), env)
    wait_for(lambda: hook.received, 20, "clock A's alert")
    first.signal(9)  # SIGKILL: no goodbye, the lease lapses by itself
    first.proc.wait(10)
    second = spawn("clock-b", python("-m", "flask", "audit", "scheduler"), env)
    wait_for(lambda: "took the lead" in second.output(), 30, "clock B to take the lead")
    time.sleep(3)  # B evaluates about six times meanwhile
    assert [p["status"] for p in hook.received] == ["firing"]  # not sent again
