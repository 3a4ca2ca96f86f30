"""Monitoring routes: the original design's JSON shapes, computed from the shared counters."""

import pytest

from flask_audit.drain import Drainer


def test_audit_metrics_shape_and_values(make_app, any_redis):
    client, prefix = any_redis
    app, audit = make_app(redis_client=client, AUDIT_KEY_PREFIX=prefix)
    runtime = audit.runtime(app)
    with app.app_context():
        for i in range(7):
            audit.log("x", user_id=i)
    Drainer(runtime.queue, runtime.store).drain_once(5)
    runtime.metrics.record_tick(depth=2, batch_size=100)
    runtime.metrics.heartbeat("test-worker")
    body = app.test_client().get("/api/v1/monitoring/audit-metrics").json
    assert set(body) == {"health", "metrics", "recommendations"}
    assert set(body["health"]) == {"status", "issues"}
    assert set(body["metrics"]) == {
        "queue_length",
        "current_batch_size",
        "inserts_last_minute",
        "failures_last_minute",
        "avg_batch_time_ms",
        "total_dropped_events",
        "total_overflow_events",
    }
    metrics = body["metrics"]
    assert (metrics["queue_length"], metrics["inserts_last_minute"], metrics["current_batch_size"]) == (
        2,
        5,
        100,
    )
    assert metrics["avg_batch_time_ms"] > 0
    assert body["health"] == {"status": "healthy", "issues": []}
    assert body["recommendations"] == [{"severity": "info", "message": "All systems operating normally."}]


def test_backlog_shows_in_health_and_recommendations(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis, AUDIT_ALERT_QUEUE_THRESHOLD=3)
    with app.app_context():
        for _ in range(4):
            audit.log("x")
    audit.runtime(app).metrics.heartbeat("w")
    body = app.test_client().get("/api/v1/monitoring/audit-metrics").json
    assert body["health"]["status"] == "unhealthy"
    assert body["health"]["issues"] == ["Audit queue backed up! Queue length: 4"]
    assert body["recommendations"][0]["severity"] == "critical"


def test_health_reports_worker_by_heartbeat(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    client = app.test_client()
    stopped = client.get("/api/v1/monitoring/health")
    assert stopped.status_code == 200
    assert stopped.json == {
        "status": "degraded",
        "services": {"redis": "connected", "audit_worker": "stopped"},
    }
    audit.runtime(app).metrics.heartbeat("host:1")
    assert client.get("/api/v1/monitoring/health").json == {
        "status": "healthy",
        "services": {"redis": "connected", "audit_worker": "running"},
    }


def test_stale_heartbeat_means_stopped(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis, AUDIT_WORKER_HEARTBEAT_SECONDS=10)
    fake_redis.hset("audit:workers", "host:1", "1000.0")  # decades ago
    assert app.test_client().get("/api/v1/monitoring/health").json["services"]["audit_worker"] == "stopped"


@pytest.mark.parametrize("path", ["/api/v1/monitoring/health", "/api/v1/monitoring/audit-metrics"])
def test_unreachable_redis_is_503(make_app, path):
    app, _ = make_app(AUDIT_REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get(path)
    assert response.status_code == 503
    assert response.json["status" if path.endswith("health") else "health"] in (
        "unhealthy",
        {"status": "unhealthy", "issues": response.json.get("health", {}).get("issues")},
    )


def test_prefix_is_configurable(make_app, fake_redis):
    app, _ = make_app(redis_client=fake_redis, AUDIT_MONITORING_URL_PREFIX="/ops")
    assert app.test_client().get("/ops/health").status_code == 200
