"""Alerts: once per condition, again after the cooldown, a resolved notice when it clears; the
webhook is a real HTTP server on loopback, and a slow one does not hold up the clock."""

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dramatiq.brokers.stub import StubBroker

from flask_audit.alerts import AlertState, decide
from flask_audit.clock import Clock
from flask_audit.drain import Drainer
from flask_audit.health import Finding
from flask_audit.tasks import declare

BACKLOG = Finding(
    "queue_backed_up", "critical", 6843, 5000, "Audit queue backed up! Queue length: 6843", "Scale workers"
)


def test_decide_fires_once_repeats_after_cooldown_and_resolves():
    notices, state = decide([BACKLOG], {}, now=1000, cooldown=600)
    assert [n.status for n in notices] == ["firing"]
    assert notices[0].text == "🚨 CRITICAL: Audit queue backed up! Queue length: 6843"
    notices, state = decide([BACKLOG], state, now=1300, cooldown=600)
    assert notices == []
    notices, state = decide([BACKLOG], state, now=1600, cooldown=600)
    assert [n.status for n in notices] == ["firing"] and state["queue_backed_up"].firing_since == 1000
    notices, state = decide([], state, now=1700, cooldown=600)
    assert [(n.status, n.text) for n in notices] == [
        ("resolved", "✅ RESOLVED: Audit queue backed up! Queue length: 6843")
    ]
    assert state == {}


def test_health_only_findings_do_not_alert():
    other = Finding("failed_events", "warning", 3, 0, "3 events rejected", "Inspect them")
    assert decide([other], {}, now=1, cooldown=600) == ([], {})


def test_warning_text_matches_the_original_design():
    dropped = Finding(
        "events_dropped", "warning", 5, 0, "Events being dropped! Total dropped: 1247", "More workers"
    )
    (notice,), _ = decide([dropped], {}, now=1, cooldown=1)
    assert notice.text == "⚠️  WARNING: Events being dropped! Total dropped: 1247"
    assert AlertState(**{"issue": "x", "severity": "warning", "firing_since": 1, "last_sent": 1})


class Hook:
    """A webhook receiver on loopback that records what it is sent; optionally slow."""

    def __init__(self, delay: float = 0.0):
        self.received, self.delay = [], delay
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                time.sleep(hook.delay)
                hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def clock_for(make_app, fake_redis, url, **options):
    app, audit = make_app(
        redis_client=fake_redis, AUDIT_ALERT_WEBHOOK_URL=url, AUDIT_ALERT_QUEUE_THRESHOLD=3, **options
    )
    runtime = audit.runtime(app)
    broker = StubBroker()
    clock = Clock(runtime, broker, declare(broker, runtime))
    clock.elect()
    return app, audit, runtime, clock


def test_backlog_alerts_once_per_cooldown_then_resolves(make_app, fake_redis, hook, caplog):
    app, audit, runtime, clock = clock_for(make_app, fake_redis, hook.url, AUDIT_ALERT_COOLDOWN_SECONDS=600)
    runtime.metrics.heartbeat("w1")
    with app.app_context():
        for _ in range(5):
            audit.log("x")
    with caplog.at_level(logging.WARNING, logger="flask_audit.alerts"):
        for _ in range(3):
            clock.alert()
        clock.alerter.join()
        assert len(hook.received) == 1
        posted = hook.received[0]
        assert posted["text"] == "🚨 CRITICAL: Audit queue backed up! Queue length: 5"
        assert (
            posted["rule"],
            posted["severity"],
            posted["value"],
            posted["threshold"],
            posted["status"],
        ) == ("queue_backed_up", "critical", 5, 3, "firing")
        assert "Scale workers" in posted["action"]
        Drainer(runtime.queue, runtime.store).drain_all(100)
        clock.alert()
        clock.alert()
        clock.alerter.join()
    assert [p["status"] for p in hook.received] == ["firing", "resolved"]
    assert "🚨 CRITICAL: Audit queue backed up! Queue length: 5" in caplog.text


def test_cooldown_passed_alerts_again(make_app, fake_redis, hook):
    app, audit, runtime, clock = clock_for(make_app, fake_redis, hook.url, AUDIT_ALERT_COOLDOWN_SECONDS=0.2)
    with app.app_context():
        for _ in range(5):
            audit.log("x")
    clock.alert()
    time.sleep(0.3)
    clock.alert()
    clock.alerter.join()
    assert [p["status"] for p in hook.received] == ["firing", "firing"]


def test_a_slow_webhook_does_not_hold_up_the_clock(make_app, fake_redis):
    slow = Hook(delay=2.0)
    try:
        app, audit, runtime, clock = clock_for(make_app, fake_redis, slow.url)
        with app.app_context():
            for _ in range(5):
                audit.log("x")
        started = time.perf_counter()
        clock.alert()
        assert clock.tick() >= 1  # the clock goes on meanwhile
        assert time.perf_counter() - started < 0.5
        clock.alerter.join()
        assert len(slow.received) == 1
    finally:
        slow.close()


def test_a_dead_webhook_is_logged_not_raised(make_app, fake_redis, caplog):
    app, audit, runtime, clock = clock_for(make_app, fake_redis, "http://127.0.0.1:1/hook")
    with app.app_context():
        for _ in range(5):
            audit.log("x")
    with caplog.at_level(logging.ERROR, logger="flask_audit.alerts"):
        clock.alert()
        clock.alerter.join()
    assert "alert webhook failed" in caplog.text
