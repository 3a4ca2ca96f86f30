"""Monitoring routes: the original design's JSON shapes, computed from the shared counters."""

import pytest

from flask_audit.pipeline.drain import Drainer


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


def test_without_a_token_no_route_serves_event_content(make_app, fake_redis):
    """The dashboard's data lists critical events only when AUDIT_MONITORING_TOKEN is set."""
    app, audit = make_app(redis_client=fake_redis)
    with app.app_context():
        audit.critical("account_banned", user_id="u-42", description="banned", ip_address="203.0.113.7")
    client = app.test_client()
    data = client.get("/api/v1/monitoring/dashboard/data")
    assert data.status_code == 200 and data.json["critical_events"] is None
    for path in ("/api/v1/monitoring/dashboard/data", "/api/v1/monitoring/audit-metrics", "/metrics"):
        body = client.get(path).data
        assert b"u-42" not in body and b"203.0.113.7" not in body and b"banned" not in body


def test_with_a_token_the_dashboard_lists_critical_events(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis, AUDIT_MONITORING_TOKEN="t0ken")
    with app.app_context():
        audit.critical("account_banned", user_id="u-42")
    client = app.test_client()
    assert client.get("/api/v1/monitoring/dashboard/data").status_code == 401
    data = client.get("/api/v1/monitoring/dashboard/data", headers={"Authorization": "Bearer t0ken"})
    assert [e["user_id"] for e in data.json["critical_events"]] == ["u-42"]


def test_monitoring_answers_are_not_cached_and_send_no_referrer(make_app, fake_redis):
    app, _ = make_app(redis_client=fake_redis)
    client = app.test_client()
    for path in ("/api/v1/monitoring/dashboard", "/api/v1/monitoring/dashboard/data", "/metrics"):
        response = client.get(path)
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["Referrer-Policy"] == "no-referrer", path
    assert (
        "default-src 'self'" in client.get("/api/v1/monitoring/dashboard").headers["Content-Security-Policy"]
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/monitoring/health",
        "/api/v1/monitoring/audit-metrics",
        "/api/v1/monitoring/dashboard/data",
        "/metrics",
    ],
)
def test_open_routes_answer_503_with_generic_texts_when_redis_is_down(make_app, path):
    app, _ = make_app(AUDIT_REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get(path)
    assert response.status_code == 503
    assert b"127.0.0.1" not in response.data and b"Connection refused" not in response.data


def test_dashboard_data_reports_the_database_truly(make_app, fake_redis):
    app, audit = make_app(
        redis_client=fake_redis,
        AUDIT_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none",
        create_schema=False,
    )
    audit.runtime(app).metrics.heartbeat("w1")
    body = app.test_client().get("/api/v1/monitoring/dashboard/data").json
    assert body["services"] == {"redis": "connected", "database": "disconnected"}
    assert body["health"]["status"] == "unhealthy" and "Database unreachable" in body["health"]["issues"]
    assert "127.0.0.1" not in str(body)


def test_dashboard_data_without_a_token_still_asks_the_database(make_app, fake_redis, any_db_url):
    """No token: no events are shown, but the database is still pinged, truly."""
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=any_db_url)
    audit.runtime(app).metrics.heartbeat("w1")
    body = app.test_client().get("/api/v1/monitoring/dashboard/data").json
    assert body["services"] == {"redis": "connected", "database": "connected"}
    assert body["health"]["status"] == "healthy" and body["critical_events"] is None


def test_the_critical_events_query_reads_the_partial_index(make_app, fake_redis, pg_url):
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=pg_url)
    store = audit.runtime(app).store
    store.database.execute_sql(
        "INSERT INTO audit_logs (event_id, created_at, event_type, event_category)"
        " SELECT gen_random_uuid(), now() - make_interval(secs => i),"
        " 'x', CASE WHEN mod(i, 500) = 0 THEN 'critical' ELSE 'info' END FROM generate_series(1, 20000) AS i"
    )
    store.database.execute_sql("ANALYZE audit_logs")
    model = store.model
    sql, params = (
        model.select()
        .where(model.event_category == "critical")
        .order_by(model.created_at.desc())
        .limit(10)
        .sql()
    )
    plan = "\n".join(row[0] for row in store.database.execute_sql("EXPLAIN " + sql, params).fetchall())
    assert "audit_logs_critical_created_at" in plan and "Seq Scan" not in plan, plan
    assert len(store.recent(10, category="critical")) == 10


@pytest.mark.parametrize(
    ("field", "index"), [("user_id", "audit_logs_by_user"), ("tenant_id", "audit_logs_by_tenant")]
)
def test_a_query_by_an_optional_key_reads_its_partial_index(make_app, fake_redis, pg_url, field, index):
    """The user and tenant indexes hold only rows with a key (most rows here have none), and the
    query API's filters, always a value, still read them newest first."""
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=pg_url, AUDIT_API_TOKEN="t0ken")
    store = audit.runtime(app).store
    store.database.execute_sql(
        f"INSERT INTO audit_logs (event_id, created_at, event_type, event_category, {field})"
        " SELECT gen_random_uuid(), now() - make_interval(secs => i), 'x', 'info',"
        " CASE WHEN mod(i, 100) = 0 THEN 'k' || mod(i, 7) END FROM generate_series(1, 20000) AS i"
    )
    store.database.execute_sql("ANALYZE audit_logs")
    model = store.model
    column = getattr(model, field)
    sql, params = model.select().where(column == "k3").order_by(model.created_at.desc()).limit(10).sql()
    plan = "\n".join(row[0] for row in store.database.execute_sql("EXPLAIN " + sql, params).fetchall())
    assert index in plan and "Seq Scan" not in plan, plan
    entries = store.database.execute_sql(
        "SELECT reltuples FROM pg_class WHERE relname = %s", (index,)
    ).fetchone()[0]
    assert entries == 200  # the rows that have a key, not the 20,000
    api = app.test_client().get(
        f"/api/v1/audit-logs?{field}=k3&limit=500", headers={"Authorization": "Bearer t0ken"}
    )
    assert api.status_code == 200, api.data
    assert len(api.json["items"]) == 28  # i = 100k with 2k = 3 (mod 7): k = 5, 12, ..., 194


def test_an_overflowing_queue_and_a_failed_list_show_in_health_and_status(make_app, any_redis):
    """The two warning findings, as the monitoring route and `flask audit status` report them."""
    client, prefix = any_redis
    app, audit = make_app(redis_client=client, AUDIT_KEY_PREFIX=prefix, AUDIT_MAX_QUEUE_LENGTH=2)
    runtime = audit.runtime(app)
    runtime.metrics.heartbeat("w")
    with app.app_context():
        for i in range(5):
            audit.log("x", user_id=i)  # 2 queued, 3 overflow: written through to the database
    body = app.test_client().get("/api/v1/monitoring/audit-metrics").json
    assert body["health"] == {
        "status": "degraded",
        "issues": ["Queue overflowed: 3 events written directly to the database in the last minute"],
    }
    assert body["recommendations"] == [
        {"severity": "warning", "message": "Increase the worker count or AUDIT_MAX_QUEUE_LENGTH."}
    ]

    client.rpush(runtime.queue.queue_key, b"{not json")  # poison: the drain sets it aside
    result = Drainer(runtime.queue, runtime.store).drain_once(10)
    assert (result.inserted, result.failed) == (2, 1)
    body = app.test_client().get("/api/v1/monitoring/audit-metrics").json
    assert body["health"]["status"] == "degraded"
    assert body["health"]["issues"][1] == "1 events rejected by the database wait in the failed list"
    assert body["recommendations"][1] == {
        "severity": "warning",
        "message": "Inspect them with `flask audit failed list`, fix the cause, then `failed requeue`.",
    }
    out = app.test_cli_runner().invoke(args=["audit", "status"]).output
    assert "status      degraded" in out and "failed list 1" in out
    assert "issue       1 events rejected by the database wait in the failed list" in out
    assert "issue       Queue overflowed: 3 events" in out
