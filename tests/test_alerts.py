"""Alerts: once per condition, again after the cooldown, a resolved notice when it clears; the
webhook is a real HTTP server on loopback, and a slow one does not hold up the clock."""

import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dramatiq.brokers.stub import StubBroker

from flask_audit.monitoring.alerts import Alerter, AlertState, decide
from flask_audit.monitoring.health import Finding
from flask_audit.pipeline.clock import Clock
from flask_audit.pipeline.drain import Drainer
from flask_audit.pipeline.tasks import declare
from tests.processes import wait_for

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
    notices, state = decide([other, BACKLOG], {}, now=1, cooldown=600)  # nor stop the ones that do
    assert [n.rule for n in notices] == ["queue_backed_up"] and set(state) == {"queue_backed_up"}


def test_a_resolved_notice_names_the_rule_and_keeps_its_severity():
    _, state = decide([BACKLOG], {}, now=1, cooldown=600)
    assert state["queue_backed_up"].severity == "critical"
    (notice,), _ = decide([], state, now=2, cooldown=600)
    assert (notice.status, notice.rule, notice.severity) == ("resolved", "queue_backed_up", "critical")
    assert notice.payload()["severity"] == "critical"


def test_warning_text_matches_the_original_design():
    dropped = Finding(
        "events_dropped", "warning", 5, 0, "Events being dropped! Total dropped: 1247", "More workers"
    )
    (notice,), _ = decide([dropped], {}, now=1, cooldown=1)
    assert notice.text == "⚠️  WARNING: Events being dropped! Total dropped: 1247"
    assert AlertState(**{"issue": "x", "severity": "warning", "firing_since": 1, "last_sent": 1})


class Hook:
    """A webhook receiver on loopback that records what it is sent; optionally slow."""

    def __init__(self, delay: float = 0.0, fail_first: int = 0, redirect_to: str | None = None):
        self.received, self.delay, self.fail_first = [], delay, fail_first
        self.raw: list[tuple[bytes, dict[str, str]]] = []
        self.attempts = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                time.sleep(hook.delay)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.attempts += 1
                if redirect_to is not None:
                    self.send_response(307)
                    self.send_header("Location", redirect_to)
                    self.end_headers()
                    return
                if hook.attempts <= hook.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                hook.raw.append((body, dict(self.headers)))
                hook.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def backlog(app, audit, events=5):
    """Queue ``events`` events: over the threshold of 3 that clock_for sets."""
    with app.app_context():
        for _ in range(events):
            audit.log("x")


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
    backlog(app, audit)
    with caplog.at_level(logging.WARNING, logger="flask_audit.monitoring.alerts"):
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
    backlog(app, audit)
    clock.alert()
    time.sleep(0.3)
    clock.alert()
    clock.alerter.join()
    assert [p["status"] for p in hook.received] == ["firing", "firing"]


def test_a_slow_webhook_does_not_hold_up_the_clock(make_app, fake_redis):
    slow = Hook(delay=1.0)
    try:
        app, audit, runtime, clock = clock_for(make_app, fake_redis, slow.url)
        backlog(app, audit)
        started = time.perf_counter()
        clock.alert()
        assert clock.tick() >= 1  # the clock goes on meanwhile
        assert time.perf_counter() - started < 0.5
        clock.alerter.join()
        assert len(slow.received) == 1
    finally:
        slow.close()


def test_a_dead_webhook_is_logged_not_raised(make_app, fake_redis, caplog, monkeypatch):
    monkeypatch.setattr("flask_audit.monitoring.alerts.WEBHOOK_RETRY_DELAYS", (0.01, 0.01))
    app, audit, runtime, clock = clock_for(make_app, fake_redis, "http://127.0.0.1:1/hook")
    backlog(app, audit)
    with caplog.at_level(logging.ERROR, logger="flask_audit.monitoring.alerts"):
        clock.alert()
        clock.alerter.join()
    (message,) = [m for m in caplog.messages if m.startswith("alert webhook")]
    assert re.fullmatch(
        r"alert webhook failed after 3 attempts \(.*refused.*\): 🚨 CRITICAL: Audit queue backed up! Queue length: 5",
        message,
    )


def test_webhook_posts_are_signed_and_timestamped(make_app, fake_redis, hook):
    import hashlib
    import hmac

    app, audit, runtime, clock = clock_for(
        make_app, fake_redis, hook.url, AUDIT_ALERT_WEBHOOK_SECRET="hook-secret"
    )
    backlog(app, audit)
    before = int(time.time())
    clock.alert()
    clock.alerter.join()
    ((body, headers),) = hook.raw
    expected = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
    assert headers["X-Audit-Signature"] == expected
    assert before <= json.loads(body)["timestamp"] <= time.time()


def test_an_unsigned_webhook_carries_no_signature_header(make_app, fake_redis, hook):
    app, audit, runtime, clock = clock_for(make_app, fake_redis, hook.url)
    backlog(app, audit)
    clock.alert()
    clock.alerter.join()
    ((_body, headers),) = hook.raw
    assert "X-Audit-Signature" not in headers
    assert (headers["Content-Type"], headers["User-Agent"]) == ("application/json", "flask-audit")


def test_a_failing_webhook_is_retried_twice_with_back_off(make_app, fake_redis, monkeypatch):
    monkeypatch.setattr("flask_audit.monitoring.alerts.WEBHOOK_RETRY_DELAYS", (0.05, 0.1))
    flaky = Hook(fail_first=2)
    try:
        app, audit, runtime, clock = clock_for(make_app, fake_redis, flaky.url)
        backlog(app, audit)
        clock.alert()
        clock.alerter.join()
        assert flaky.attempts == 3 and len(flaky.received) == 1  # two failures, then delivered
    finally:
        flaky.close()


def test_a_webhook_that_redirects_is_not_followed(make_app, fake_redis, hook, caplog, monkeypatch):
    monkeypatch.setattr("flask_audit.monitoring.alerts.WEBHOOK_RETRY_DELAYS", (0.01, 0.01))
    redirecting = Hook(redirect_to=hook.url)
    try:
        app, audit, runtime, clock = clock_for(make_app, fake_redis, redirecting.url)
        backlog(app, audit)
        with caplog.at_level(logging.ERROR, logger="flask_audit.monitoring.alerts"):
            clock.alert()
            clock.alerter.join()
        assert redirecting.attempts == 3 and hook.received == []  # never sent where it pointed
        assert f"HTTP Error 307: redirect to {hook.url} refused" in caplog.text
    finally:
        redirecting.close()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x"])
def test_a_webhook_that_is_not_http_is_a_configuration_error(make_app, fake_redis, url):
    from flask_audit import AuditConfigError

    with pytest.raises(AuditConfigError) as info:
        make_app(redis_client=fake_redis, AUDIT_ALERT_WEBHOOK_URL=url)
    assert info.value.key == "AUDIT_ALERT_WEBHOOK_URL" and url in str(info.value)


def test_post_json_refuses_other_schemes_even_if_called_directly():
    from flask_audit.monitoring.alerts import post_json

    with pytest.raises(ValueError) as err:
        post_json("file:///etc/passwd", {"text": "x"})
    assert str(err.value) == "the alert webhook must be an http or https URL"


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:1/hook", "HTTPS://127.0.0.1:1/hook", "Http://127.0.0.1:1/h"]
)
def test_post_json_takes_https_and_any_spelling_of_the_scheme(url):
    import urllib.error

    from flask_audit.monitoring.alerts import post_json

    with pytest.raises(urllib.error.URLError):  # it tried: nothing listens on port 1
        post_json(url, {"text": "x"})


def test_a_webhook_that_never_answers_times_out(monkeypatch):
    from flask_audit.monitoring.alerts import post_json

    monkeypatch.setattr("flask_audit.monitoring.alerts.WEBHOOK_TIMEOUT", 0.2)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never answers
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            post_json(f"http://127.0.0.1:{silent.getsockname()[1]}/hook", {"text": "x"})
        assert time.monotonic() - started < 2
    finally:
        silent.close()


def test_every_job_the_readme_promises_is_registered_with_the_scheduler(make_app, fake_redis):
    """The alert job was once never scheduled while every unit test passed: check the scheduler."""
    from apscheduler.schedulers.background import BackgroundScheduler

    app, audit = make_app(
        redis_client=fake_redis,
        AUDIT_ALERT_INTERVAL_SECONDS=7,
        AUDIT_DRAIN_INTERVAL_SECONDS=0.5,
        AUDIT_SEAL_INTERVAL_SECONDS=3,
        AUDIT_VERIFY_INTERVAL_SECONDS=60,
    )
    runtime = audit.runtime(app)
    broker = StubBroker()
    scheduler = BackgroundScheduler(timezone="UTC")
    Clock(runtime, broker, declare(broker, runtime)).schedule(scheduler)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {
        "audit-elect",
        "audit-tick",
        "audit-reap",
        "audit-alerts",
        "audit-housekeeping",
        "audit-seal",
        "audit-verify",
        "audit-retention",
    }
    intervals = {
        name: job.trigger.interval.total_seconds() for name, job in jobs.items() if name != "audit-retention"
    }
    assert intervals == {
        "audit-elect": 2,
        "audit-tick": 0.5,
        "audit-reap": 5,  # a third of the 30 s visibility timeout, at most 5 s
        "audit-housekeeping": 30,
        "audit-alerts": 7,
        "audit-seal": 3,
        "audit-verify": 60,
    }
    retention = {f.name: str(f) for f in jobs["audit-retention"].trigger.fields}
    assert (retention["hour"], retention["minute"]) == ("3", "17")
    # each job runs alone, a late run is folded into one, and a run missed by up to 30 s still runs
    assert {(j.max_instances, j.coalesce, j.misfire_grace_time) for j in jobs.values()} == {(1, True, 30)}


def test_no_periodic_verification_when_its_interval_is_zero(make_app, fake_redis):
    from apscheduler.schedulers.background import BackgroundScheduler

    app, audit = make_app(redis_client=fake_redis, AUDIT_VERIFY_INTERVAL_SECONDS=0)
    runtime = audit.runtime(app)
    broker = StubBroker()
    scheduler = BackgroundScheduler(timezone="UTC")
    Clock(runtime, broker, declare(broker, runtime)).schedule(scheduler)
    assert "audit-verify" not in {job.id for job in scheduler.get_jobs()}


@pytest.mark.parametrize(("visibility", "reap_every"), [(1, 0.5), (6, 2), (12, 4), (3600, 5)])
def test_the_reaper_runs_three_times_per_visibility_timeout_between_half_a_second_and_five(
    make_app, fake_redis, visibility, reap_every
):
    from apscheduler.schedulers.background import BackgroundScheduler

    app, audit = make_app(redis_client=fake_redis, AUDIT_VISIBILITY_TIMEOUT_SECONDS=visibility)
    runtime = audit.runtime(app)
    broker = StubBroker()
    scheduler = BackgroundScheduler(timezone="UTC")
    Clock(runtime, broker, declare(broker, runtime)).schedule(scheduler)
    assert scheduler.get_job("audit-reap").trigger.interval.total_seconds() == reap_every


DROPPED = Finding("events_dropped", "warning", 5, 0, "Events being dropped! Total dropped: 5", "More workers")


def test_firing_critical_alerts_log_at_critical_and_the_rest_at_warning(fake_redis, caplog):
    alerter = Alerter(fake_redis, "alerts", None, cooldown=600)
    with caplog.at_level(logging.DEBUG, logger="flask_audit.monitoring.alerts"):
        alerter.evaluate([BACKLOG, DROPPED], now=1000)
        alerter.evaluate([], now=1001)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("CRITICAL", "🚨 CRITICAL: Audit queue backed up! Queue length: 6843"),
        ("WARNING", "⚠️  WARNING: Events being dropped! Total dropped: 5"),
        ("WARNING", "✅ RESOLVED: Audit queue backed up! Queue length: 6843"),
        ("WARNING", "✅ RESOLVED: Events being dropped! Total dropped: 5"),
    ]


def senders():
    return [t for t in threading.enumerate() if t.name == "audit-alert-webhook"]


def test_one_daemon_thread_sends_the_webhooks_and_a_full_backlog_is_logged(fake_redis, caplog, monkeypatch):
    """Notices wait in a bounded outbox for one background sender; past the bound they are
    logged as not sent, and the clock never waits."""
    monkeypatch.setattr("flask_audit.monitoring.alerts.WEBHOOK_BACKLOG", 1)
    gate = threading.Event()
    sent: list[str] = []

    def post(url, body, secret=None):
        gate.wait(10)
        sent.append(body["rule"])
        return 200

    monkeypatch.setattr("flask_audit.monitoring.alerts.post_json", post)
    before = len(senders())
    alerter = Alerter(fake_redis, "alerts", "http://127.0.0.1:9/hook", cooldown=600)
    third = Finding("high_failure_rate", "critical", 60, 50, "High failure rate! Failures: 60/min", "Check")
    with caplog.at_level(logging.ERROR, logger="flask_audit.monitoring.alerts"):
        alerter.evaluate([BACKLOG], now=1)  # taken by the sender, which waits at the gate
        wait_for(lambda: alerter._outbox.empty(), 5, "the sender to take the first notice")
        alerter.evaluate([BACKLOG, DROPPED], now=2)  # fills the outbox of one
        alerter.evaluate([BACKLOG, DROPPED, third], now=3)
    assert len(senders()) == before + 1 and all(t.daemon for t in senders())
    gate.set()
    alerter.join()
    assert sent == ["queue_backed_up", "events_dropped"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "alert webhook backlog full, not sent: 🚨 CRITICAL: High failure rate! Failures: 60/min"
    ]


def test_join_gives_up_after_its_timeout_and_leaves_no_thread_that_blocks_exit(fake_redis, monkeypatch):
    gate = threading.Event()
    monkeypatch.setattr("flask_audit.monitoring.alerts.post_json", lambda *a, **k: gate.wait(10))
    alerter = Alerter(fake_redis, "alerts", "http://127.0.0.1:9/hook", cooldown=600)
    alerter.evaluate([BACKLOG], now=1)
    started = time.monotonic()
    alerter.join(timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    blocking = [t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    assert blocking == []
    gate.set()


def test_an_alerter_uses_the_retry_delays_it_is_given(fake_redis, monkeypatch):
    attempts: list[float] = []

    def failing(url, body, secret=None):
        attempts.append(time.monotonic())
        raise OSError("down")

    monkeypatch.setattr("flask_audit.monitoring.alerts.post_json", failing)
    alerter = Alerter(fake_redis, "alerts", "http://127.0.0.1:9/hook", cooldown=600, retry_delays=(0.01,))
    alerter.evaluate([BACKLOG], now=1)
    alerter.join()
    assert len(attempts) == 2  # one try, one retry: the default would make three
