"""Direct pushes under servers that run requests concurrently in one process. Under a server that
runs every request on a new thread (Flask's own, ``flask run``) they share kept connections: the
Redis pool never runs out, so no push falls back and the monitoring routes still reach Redis
after many more requests than the pool holds. Under gunicorn's gevent workers, greenlets go
through group commit and every event is pushed. (How many round trips they share depends on how
the requests overlap: 27 to 122 for 150 events in one worker here, so the load bench measures
it, not this test.)"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.integration.test_end_to_end import http, rows, web_answers
from tests.processes import gunicorn, listening_socket, python, wait_for

#: more requests than redis-py's pool allows connections (100)
REQUESTS = 150


def gevent_worker(spawn, env: dict[str, str], *options: str):
    """One gunicorn gevent worker serving the example app, answering: its process and base URL."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    command = gunicorn(
        sock, "examples.app:create_app()", "--workers", "1", "--worker-class", "gevent", *options
    )
    web = spawn("web", command, env, pass_fds=(sock.fileno(),))
    sock.close()  # gunicorn holds its own copy
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: web_answers(base), 30, "gunicorn (gevent) to answer")
    return web, base


def test_flask_run_pushes_every_event_without_running_out_of_connections(
    service_env, spawn, real_redis_client, key_prefix
):
    sock = listening_socket()
    port = sock.getsockname()[1]
    sock.close()  # the development server binds the port itself
    web = spawn("web", python("-m", "flask", "run", "--port", str(port), "--no-reload"), service_env)
    base = f"http://127.0.0.1:{port}"

    wait_for(lambda: web_answers(base), 30, "flask run to answer")
    for i in range(REQUESTS):
        status, _, _ = http("POST", base + "/api/v1/keys", {"name": f"k{i}"}, {"X-User-ID": "7"})
        assert status == 201, status

    assert real_redis_client.llen(key_prefix + "queue") == REQUESTS  # every event pushed, none fell back
    _, _, body = http("GET", base + "/api/v1/monitoring/health")
    assert body["services"]["redis"] == "connected", body
    assert "falling back" not in web.output()
    assert "Too many connections" not in web.output()


def test_gunicorn_gevent_workers_push_every_event(service_env, spawn, real_redis_client, key_prefix):
    web, base = gevent_worker(spawn, service_env, "--worker-connections", "100")

    def create(i: int) -> int:
        return http("POST", base + "/api/v1/keys", {"name": f"k{i}"}, {"X-User-ID": "7"})[0]

    with ThreadPoolExecutor(16) as clients:  # up to 16 requests in flight, in one worker
        statuses = list(clients.map(create, range(REQUESTS)))

    assert statuses == [201] * REQUESTS
    assert real_redis_client.llen(key_prefix + "queue") == REQUESTS  # every event pushed, none fell back
    assert "falling back" not in web.output()


def test_gunicorn_gevent_workers_answer_when_redis_stops_answering(
    service_env, spawn, pg_url, real_redis_client
):
    """Redis stops answering writes (``CLIENT PAUSE ... WRITE``): under gevent the push still times
    out after AUDIT_REDIS_TIMEOUT_SECONDS, the breaker opens and the event is written through, so
    the request is answered and its event stored, long before Redis answers again."""
    web, base = gevent_worker(spawn, service_env, "--timeout", "60")

    real_redis_client.execute_command("CLIENT", "PAUSE", 20_000, "WRITE")
    try:
        started = time.monotonic()
        status, _, body = http("POST", base + "/api/v1/keys", {"name": "paused"}, {"X-User-ID": "7"})
        took = time.monotonic() - started
    finally:
        real_redis_client.execute_command("CLIENT", "UNPAUSE")

    assert status == 201, body
    assert took < 5, f"the request took {took:.1f} s"
    assert [row[1] for row in rows(pg_url)] == ["api_key_created"]  # written through
    assert "falling back" in web.output()
