"""The log stream through the path a user takes: `dramatiq` worker processes with
AUDIT_STREAM_URL set, an endpoint on loopback that stalls, fails and recovers, and a worker
killed mid-stream. Every event arrives, in order; the drain never waits for the stream."""

from __future__ import annotations

import signal

import psycopg2
import pytest

from tests.processes import python, wait_for
from tests.stream_endpoint import StreamEndpoint
from tests.test_streams import first_deliveries


@pytest.fixture
def endpoint():
    receiver = StreamEndpoint()
    yield receiver
    receiver.close()


def stored_ids(pg_url: str) -> list[int]:
    conn = psycopg2.connect(pg_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM audit_logs ORDER BY id")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def test_a_worker_streams_every_event_in_order_through_stalls_failures_and_a_kill(
    make_app, service_env, spawn, pg_url, endpoint
):
    env = dict(
        service_env,
        AUDIT_STREAM_URL=endpoint.url,
        AUDIT_STREAM_BATCH_SIZE="100",
        AUDIT_STREAM_TIMEOUT_SECONDS="0.5",
        AUDIT_STREAM_MAX_BACKOFF_SECONDS="0.5",
    )
    app, audit = make_app(
        AUDIT_REDIS_URL=env["AUDIT_REDIS_URL"],
        AUDIT_KEY_PREFIX=env["AUDIT_KEY_PREFIX"],
        AUDIT_DATABASE_URL=pg_url,
    )
    endpoint.mode, endpoint.stall_seconds = "stall", 1.0  # down from the start: every POST hangs
    worker_args = python("-m", "dramatiq", "worker", "--processes", "1", "--threads", "2")
    worker = spawn("worker-1", worker_args, env)
    spawn("clock", python("-m", "flask", "audit", "scheduler"), env)
    with app.app_context():
        for i in range(600):
            audit.log("api_key_created", user_id=str(i))
    # the drain goes on while the stream hangs: all 600 stored, none accepted by the endpoint
    wait_for(lambda: len(stored_ids(pg_url)) == 600, 60, "600 rows drained while the stream stalls")
    wait_for(lambda: endpoint.attempts >= 2, 30, "the stream's attempts against the stalled endpoint")
    assert endpoint.accepted == []
    endpoint.mode = "fail"
    wait_for(lambda: endpoint.attempts >= 4, 30, "retries against a failing endpoint")
    endpoint.mode = "ok"
    wait_for(lambda: len(first_deliveries(endpoint.lines())) >= 200, 60, "the stream to recover")
    worker.signal(signal.SIGKILL)  # mid-stream: the cursor in the database says where it got to
    worker.proc.wait(10)
    with app.app_context():
        for i in range(200):
            audit.log("api_key_deleted", user_id=str(i))
    spawn("worker-2", worker_args, env)
    wait_for(lambda: len(stored_ids(pg_url)) == 800, 60, "800 rows stored")
    stored = stored_ids(pg_url)
    wait_for(lambda: set(first_deliveries(endpoint.lines())) >= set(stored), 60, "all 800 delivered")
    order = first_deliveries(endpoint.lines())
    assert order == stored  # in id order, none skipped
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    delivered = float(
        next(
            line.split()[1]
            for line in metrics.splitlines()
            if line.startswith("audit_stream_delivered_total")
        )
    )
    failures = float(
        next(
            line.split()[1] for line in metrics.splitlines() if line.startswith("audit_stream_failures_total")
        )
    )
    assert delivered >= 800 and failures >= 4
