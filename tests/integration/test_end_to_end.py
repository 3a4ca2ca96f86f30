"""The example app under gunicorn, a real `dramatiq` worker and the clock, on the real Redis and
PostgreSQL: requests come in, events land, the monitoring routes say what happened."""

from __future__ import annotations

import json
import urllib.request

import psycopg2
import pytest

from tests.processes import gunicorn, listening_socket, python, wait_for


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


def web_answers(base: str) -> bool:
    """Whether the app at ``base`` answers its health route yet (healthy or not)."""
    try:
        return http("GET", base + "/api/v1/monitoring/health")[0] in (200, 503)
    except OSError:
        return False


def rows(pg_url: str) -> list[tuple]:
    conn = psycopg2.connect(pg_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT event_id::text, event_type, event_category, user_id, request_id FROM audit_logs ORDER BY id"
            )
            return cur.fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_requests_land_in_postgres_through_worker_and_clock(
    service_env, spawn, pg_url, broker, request, real_redis_client
):
    """The same run with the drain messages in the audit Redis (the default) and on RabbitMQ
    (AUDIT_BROKER_URL); the events themselves always wait in Redis."""
    if broker == "rabbitmq":
        url, queue = request.getfixturevalue("rabbitmq_queue")
        service_env = {**service_env, "AUDIT_BROKER_URL": url, "AUDIT_DRAMATIQ_QUEUE": queue}
    sock = listening_socket()
    port = sock.getsockname()[1]
    web = spawn(
        "web",
        gunicorn(sock, "examples.app:create_app()"),
        service_env,
        pass_fds=(sock.fileno(),),
    )
    sock.close()  # gunicorn holds its own copy
    worker = spawn(
        "worker", python("-m", "dramatiq", "worker", "--processes", "1", "--threads", "2"), service_env
    )
    clock = spawn("clock", python("-m", "flask", "audit", "scheduler"), service_env)
    base = f"http://127.0.0.1:{port}"

    wait_for(lambda: web_answers(base), 30, "gunicorn to answer")
    wait_for(
        lambda: http("GET", base + "/api/v1/monitoring/health")[2]["services"]["audit_worker"] == "running",
        30,
        "the worker's heartbeat",
    )

    sent: dict[str, str] = {}
    for i in range(40):
        status, headers, body = http(
            "POST",
            base + "/api/v1/keys",
            {"name": f"key{i}"},
            {"X-User-ID": "42", "X-Request-ID": f"req-{i}"},
        )
        assert status == 201 and headers["X-Request-ID"] == f"req-{i}"
    for i in range(3):
        status, _, body = http("POST", base + f"/api/v1/accounts/u{i}/ban", {"violations": 5})
        assert status == 200
        sent[body["audit_event_id"]] = "critical"
    status, _, body = http("POST", base + "/api/v1/usage", {"calls": 8500}, {"X-User-ID": "7"})
    assert body["usage"] == 8500

    wait_for(lambda: len(rows(pg_url)) >= 44, 30, "44 rows in audit_logs")
    stored = rows(pg_url)
    assert len(stored) == 44 and len({r[0] for r in stored}) == 44
    keys = [r for r in stored if r[1] == "api_key_created"]
    assert sorted(r[4] for r in keys) == sorted(f"req-{i}" for i in range(40))
    assert all(r[3] == "42" for r in keys)
    assert {r[0] for r in stored if r[2] == "critical"} == set(sent)
    assert [r[1] for r in stored if r[2] == "warning"] == ["usage_warning_80_percent"]

    status, _, metrics = http("GET", base + "/api/v1/monitoring/audit-metrics")
    assert status == 200
    assert metrics["metrics"]["queue_length"] == 0
    assert metrics["metrics"]["inserts_last_minute"] == 41
    assert metrics["metrics"]["current_batch_size"] == 100
    assert metrics["metrics"]["avg_batch_time_ms"] > 0
    assert metrics["health"] == {"status": "healthy", "issues": []}
    assert all(p.alive() for p in (web, worker, clock))
    drain_keys = real_redis_client.keys(service_env["AUDIT_KEY_PREFIX"] + "dramatiq*")
    if broker == "rabbitmq":  # the drain messages went through RabbitMQ, none through Redis
        assert drain_keys == []
        assert rabbit_consumers(*request.getfixturevalue("rabbitmq_queue")) == 1
    else:
        assert drain_keys


def rabbit_consumers(url: str, queue: str) -> int:
    """Consumers of ``queue`` now (the worker's), by a passive declare: fails if it does not exist."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.consumer_count
    finally:
        connection.close()
