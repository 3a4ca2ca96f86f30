"""GET /metrics: Prometheus's own parser reads it; values come from the shared counters."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flask_audit.pipeline.drain import Drainer


def scrape(client, headers=None):
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/plain"
    return {f.name: f for f in text_string_to_metric_families(response.get_data(as_text=True))}


def value(family, suffix=""):
    return next(s.value for s in family.samples if s.name == family.name + suffix)


def test_metrics_parse_and_report_activity(make_app, any_redis):
    client, prefix = any_redis
    app, audit = make_app(redis_client=client, AUDIT_KEY_PREFIX=prefix, AUDIT_MAX_QUEUE_LENGTH=8)
    runtime = audit.runtime(app)
    with app.app_context():
        for i in range(10):
            audit.log("x", user_id=i)  # 8 queued, 2 overflow (written through)
        audit.critical("permanent_ban_applied", user_id="u")
    Drainer(runtime.queue, runtime.store).drain_once(5)
    runtime.metrics.record_tick(depth=3, batch_size=100)
    runtime.metrics.heartbeat("w1")
    families = scrape(app.test_client())
    assert value(families["audit_queue_length"]) == 3
    assert value(families["audit_batch_size"]) == 100
    assert value(families["audit_workers_alive"]) == 1
    assert value(families["audit_events_enqueued"], "_total") == 8
    assert value(families["audit_events_inserted"], "_total") == 5
    assert value(families["audit_events_overflow"], "_total") == 2
    assert value(families["audit_events_dropped"], "_total") == 0
    assert value(families["audit_critical_writes"], "_total") == 1
    assert value(families["audit_failed_length"]) == 0
    histogram = families["audit_batch_duration_seconds"]
    assert histogram.type == "histogram"
    buckets = [s for s in histogram.samples if s.name.endswith("_bucket")]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and counts[-1] == 1 and buckets[-1].labels["le"] == "+Inf"
    assert value(histogram, "_count") == 1 and value(histogram, "_sum") > 0


def test_a_scrape_is_one_round_trip(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    calls = []
    original = fake_redis.pipeline

    def counting_pipeline(*args, **kwargs):
        calls.append("pipeline")
        return original(*args, **kwargs)

    fake_redis.pipeline = counting_pipeline
    execute = fake_redis.execute_command
    fake_redis.execute_command = lambda *a, **k: calls.append(a[0]) or execute(*a, **k)
    scrape(app.test_client())
    assert calls == ["pipeline"]


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/api/v1/monitoring/audit-metrics",
        "/api/v1/monitoring/dashboard",
        "/api/v1/monitoring/dashboard/data",
    ],
)
def test_monitoring_token_protects_everything_but_health(make_app, fake_redis, path):
    app, _ = make_app(redis_client=fake_redis, AUDIT_MONITORING_TOKEN="t0ken")
    client = app.test_client()
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer t0ken"}).status_code == 200
    assert client.get("/api/v1/monitoring/health").status_code == 200


def test_dashboard_page_trades_the_token_in_the_address_for_a_cookie(make_app, fake_redis):
    app, _ = make_app(redis_client=fake_redis, AUDIT_MONITORING_TOKEN="t0ken")
    client = app.test_client()
    page = client.get("/api/v1/monitoring/dashboard?token=t0ken")
    assert page.status_code == 303
    assert page.headers["Location"].endswith("/api/v1/monitoring/dashboard")  # the token leaves the address
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "t0ken" not in cookie
    assert client.get("/api/v1/monitoring/dashboard").status_code == 200  # the cookie opens it now
    assert client.get("/api/v1/monitoring/dashboard/data").status_code == 200
    assert b"t0ken" not in client.get("/api/v1/monitoring/dashboard").data
    assert client.get("/metrics").status_code == 401  # the cookie is not the bearer token
    stranger = app.test_client()
    assert stranger.get("/api/v1/monitoring/dashboard?token=wrong").status_code == 401
    assert (
        stranger.get("/api/v1/monitoring/dashboard/data?token=t0ken").status_code == 401
    )  # data: no query token
