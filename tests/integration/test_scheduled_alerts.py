"""Alerts through the path a user takes: the real `flask audit scheduler` process, no worker, a
backlog, and a webhook on loopback. This is the test that would have seen the alert job missing."""

from __future__ import annotations

import hashlib
import hmac
import json

import redis

from flask_audit.events.event import build_event
from tests.conftest import REDIS_URL
from tests.processes import python, wait_for
from tests.test_alerts import Hook


def test_the_scheduler_alone_posts_a_signed_backlog_alert(service_env, spawn, key_prefix):
    hook = Hook()
    try:
        env = dict(
            service_env,
            AUDIT_ALERT_WEBHOOK_URL=hook.url,
            AUDIT_ALERT_WEBHOOK_SECRET="hook-secret",
            AUDIT_ALERT_INTERVAL_SECONDS="0.5",
            AUDIT_ALERT_QUEUE_THRESHOLD="3",
        )
        client = redis.Redis.from_url(REDIS_URL)
        client.rpush(key_prefix + "queue", *[build_event("waiting").to_entry() for _ in range(5)])
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
    finally:
        hook.close()
