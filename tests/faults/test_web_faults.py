"""Faults seen from the web side: an unreachable Redis, both servers down, a full queue under many
producers, poison in the queue, critical events with the database down, SIGTERM to gunicorn."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.request

import psycopg2
import pytest

from tests.conftest import REDIS_URL
from tests.faults.helpers import execute, ledger, postgres_stopped, stored_ids
from tests.processes import gunicorn, listening_socket, python, wait_for

DEAD_REDIS = "redis://127.0.0.1:1/0"
WORKER = python("-m", "dramatiq", "flask_audit.worker", "--processes", "1", "--threads", "2")
CLOCK = python("-m", "flask", "audit", "scheduler")


@pytest.mark.expect_swallowed
def test_redis_unreachable_then_both_down_loses_nothing(make_app, pg_url, key_prefix, tmp_path, service_env):
    spool = str(tmp_path / "spool.jsonl")
    app, audit = make_app(AUDIT_REDIS_URL=DEAD_REDIS, AUDIT_DATABASE_URL=pg_url, AUDIT_SPOOL_PATH=spool)
    client = app.test_client()

    def request_log(n, event_type):
        started = time.perf_counter()
        ids = [client.post("/log", json={"type": event_type}).json["id"] for _ in range(n)]
        return ids, (time.perf_counter() - started) / n

    @app.post("/log")
    def log_view():
        from flask import request

        return {"id": audit.log(request.json["type"])}

    through, per_request = request_log(200, "redis_down")
    assert per_request < 0.05  # the breaker: no 250 ms timeout per request
    assert sorted(stored_ids(pg_url)) == sorted(through)
    with postgres_stopped():
        spooled, _ = request_log(100, "both_down")
    runtime = audit.runtime(app)
    assert runtime.spool.pending() == 100
    # Redis is reachable again: the operator (or the clock) replays the spool, a drain lands it.
    env = {**service_env, "AUDIT_SPOOL_PATH": spool}
    replay = subprocess.run(
        python("-m", "flask", "audit", "replay-spool"), env=env, capture_output=True, text=True, timeout=120
    )
    assert "replayed 100 events" in replay.stdout, replay.stderr
    subprocess.run(
        python("-m", "flask", "audit", "drain"), env=env, check=True, capture_output=True, timeout=120
    )
    assert sorted(stored_ids(pg_url)) == sorted(through + spooled)
    live, _ = make_app(
        AUDIT_REDIS_URL=REDIS_URL,
        AUDIT_KEY_PREFIX=key_prefix,
        AUDIT_DATABASE_URL=pg_url,
        AUDIT_SPOOL_PATH=spool,
    )
    ledger(live.extensions["audit"].runtime(live), pg_url, 300)


@pytest.mark.parametrize("policy", ["drop", "direct"])
def test_cap_holds_under_concurrent_producers(policy, service_env, pg_url, key_prefix, make_app, tmp_path):
    env = {**service_env, "AUDIT_MAX_QUEUE_LENGTH": "300", "AUDIT_OVERFLOW_POLICY": policy}
    producers = [
        subprocess.Popen(
            python("-m", "tests.faults.produce", "4", "250", str(tmp_path / f"p{i}")),
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    ids = []
    for proc in producers:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        ids += json.loads(out)
    sent = 4 * 4 * 250
    assert len(set(ids)) == sent
    app, audit = make_app(
        AUDIT_REDIS_URL=REDIS_URL,
        AUDIT_KEY_PREFIX=key_prefix,
        AUDIT_DATABASE_URL=pg_url,
        AUDIT_MAX_QUEUE_LENGTH=300,
    )
    runtime = audit.runtime(app)
    totals = runtime.background_metrics.snapshot().totals
    assert runtime.background_queue.depth() == 300
    assert totals["enqueued"] == 300
    books = ledger(runtime, pg_url, sent)
    if policy == "drop":
        assert totals["dropped"] == sent - 300 and books["stored"] == 0
    else:
        assert totals["overflow"] == sent - 300 == books["stored"] and totals["dropped"] == 0


def test_poison_is_isolated_by_a_real_worker(live_poison_env, spawn, pg_url):
    app, audit, runtime, env = live_poison_env
    with app.app_context():
        sent = [audit.log("poison" if i % 150 == 7 else "good", user_id=i) for i in range(1000)]
    runtime.background_queue.push([b'{"v":1, this is not json', b"\xff\xfe"])
    spawn("worker", WORKER, env)
    spawn("clock", CLOCK, env)
    wait_for(
        lambda: runtime.background_queue.depth() == 0 and runtime.background_queue.inflight_count() == 0,
        60,
        "the queue drained",
    )
    failed = [json.loads(r) for r in runtime.background_redis.lrange(runtime.config.failed_key, 0, -1)]
    poison = [f for f in failed if f["event_id"]]
    assert len(poison) == 7 and len(failed) == 9
    assert all("no_poison" in f["error"] and f["attempts"] > 1 for f in poison)
    assert len(stored_ids(pg_url)) == 993
    ledger(runtime, pg_url, len(sent) + 2)


@pytest.fixture
def live_poison_env(live, service_env, pg_url):
    # The database refuses some rows: a constraint an operator added, say.
    execute(pg_url, "ALTER TABLE audit_logs ADD CONSTRAINT no_poison CHECK (event_type <> 'poison')")
    app, audit, runtime = live
    return app, audit, runtime, service_env


def test_critical_with_postgres_down_goes_to_the_priority_list(live, service_env, spawn, pg_url):
    app, audit, runtime = live
    with app.app_context():
        audit.log("before")
        with postgres_stopped():
            critical_id = audit.critical("permanent_ban_applied", user_id="u1", resource_type="account")
            assert runtime.background_redis.llen(runtime.config.key("priority")) == 1
    spawn("worker", WORKER, service_env)
    spawn("clock", CLOCK, service_env)
    wait_for(lambda: len(stored_ids(pg_url)) == 2, 30, "both events stored")
    conn = psycopg2.connect(pg_url)
    with conn.cursor() as cur:
        cur.execute("SELECT event_id::text, event_category FROM audit_logs ORDER BY id")
        order = cur.fetchall()
    conn.close()
    assert order[0] == (critical_id, "critical")  # the priority list drains first
    ledger(runtime, pg_url, 2)


@pytest.mark.parametrize("mode", ["direct", "buffered", "direct-gthread"])
def test_sigterm_to_gunicorn_loses_no_accepted_event(mode, live, service_env, spawn, pg_url):
    """Every request answered had its event in Redis (direct; with gthread workers, through group
    commit) or in a buffer the exit flush pushed (buffered)."""
    buffered = mode == "buffered"
    app, audit, runtime = live
    sock = listening_socket()
    port = sock.getsockname()[1]
    # Buffered: a flush interval far longer than the test, so only the exit flush can deliver.
    env = (
        {**service_env, "AUDIT_BUFFERED": "1", "AUDIT_BUFFER_FLUSH_MS": "600000"} if buffered else service_env
    )
    workers = ("--worker-class", "gthread", "--threads", "4") if mode == "direct-gthread" else ()
    command = gunicorn(
        sock, "examples.app:create_app()", "--workers", "2", *workers, "--graceful-timeout", "10"
    )
    web = spawn("web", command, env, pass_fds=(sock.fileno(),))
    sock.close()  # gunicorn holds its own copy
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return urllib.request.urlopen(base + "/api/v1/monitoring/health", timeout=2).status == 200
        except OSError:
            return False

    wait_for(up, 30, "gunicorn")
    accepted: list[str] = []
    stop = threading.Event()

    def hammer(n):
        i = 0
        while not stop.is_set():
            rid = f"t{n}-{i}"
            i += 1
            req = urllib.request.Request(
                base + "/api/v1/keys",
                data=b"{}",
                method="POST",
                headers={"Content-Type": "application/json", "X-Request-ID": rid},
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as response:
                    if response.status == 201:
                        accepted.append(rid)
            except OSError:
                if not web.alive():
                    return

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(accepted) > 100, 30, "requests under way")
    web.proc.send_signal(signal.SIGTERM)
    web.proc.wait(30)
    stop.set()
    for t in threads:
        t.join()
    assert len(accepted) > 50
    with app.app_context():
        app.test_cli_runner().invoke(args=["audit", "drain"])
    conn = psycopg2.connect(pg_url)
    with conn.cursor() as cur:
        cur.execute("SELECT request_id FROM audit_logs")
        stored = {row[0] for row in cur.fetchall()}
    conn.close()
    assert set(accepted) <= stored
    ledger(runtime, pg_url, runtime.background_metrics.snapshot().totals["enqueued"])
