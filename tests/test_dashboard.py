"""The dashboard in a real browser: headless Chromium loads it, the charts are drawn from the live
JSON, and the console stays clean."""

from __future__ import annotations

import re
import threading

import pytest
from werkzeug.serving import make_server

from flask_audit.pipeline.drain import Drainer
from tests.browser import render


@pytest.fixture
def served(make_app, fake_redis):
    """The app on a loopback port, with a backlog, drained batches and critical events."""
    app, audit = make_app(redis_client=fake_redis, AUDIT_MONITORING_TOKEN="t0ken")
    runtime = audit.runtime(app)
    with app.app_context():
        for i in range(250):
            audit.log("api_key_created", user_id=i)
        for i in range(3):
            audit.critical(
                "permanent_ban_applied",
                user_id=f"u{i}",
                resource_type="account",
                description=f"User permanently banned after {i + 3} violations",
            )
    Drainer(runtime.queue, runtime.store).drain_once(100)
    runtime.metrics.record_tick(depth=150, batch_size=100)
    runtime.metrics.heartbeat("w1")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", runtime
    server.shutdown()


def test_dashboard_draws_live_data_without_console_errors(chromium, served, tmp_path):
    base, runtime = served
    dom, log = render(chromium, base + "/api/v1/monitoring/dashboard?token=t0ken", tmp_path)
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attributes = dict(re.findall(r'data-(\w+)="([^"]*)"', body))
    assert int(attributes["loaded"]) >= 1, dom[:2000]
    assert attributes["charts"] == "4"
    assert attributes["errors"] == "0"
    assert re.search(r'id="t-queue" class="value">150<', dom)  # the live queue length
    assert re.search(r'id="status" class="badge (healthy|degraded|unhealthy)"', dom)
    assert dom.count("permanent_ban_applied") == 3
    assert "User permanently banned after 5 violations" in dom
    console_errors = [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console_errors == []


def test_dashboard_without_a_token_shows_counters_and_no_event_content(
    chromium, make_app, fake_redis, tmp_path
):
    app, audit = make_app(redis_client=fake_redis)
    with app.app_context():
        audit.critical("permanent_ban_applied", user_id="u-secret", description="banned for cause")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dom, _ = render(
            chromium, f"http://127.0.0.1:{server.server_port}/api/v1/monitoring/dashboard", tmp_path
        )
    finally:
        server.shutdown()
    attributes = dict(re.findall(r'data-(\w+)="([^"]*)"', re.search(r"<body([^>]*)>", dom).group(1)))
    assert int(attributes["loaded"]) >= 1 and attributes["errors"] == "0"
    assert "Set AUDIT_MONITORING_TOKEN to list events here." in dom
    assert "u-secret" not in dom and "banned for cause" not in dom
