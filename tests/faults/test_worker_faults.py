"""A worker killed or stopped in the middle of a batch, and PostgreSQL going away under it."""

from __future__ import annotations

import signal

from tests.faults.helpers import fast_inserts, inserting, ledger, postgres_stopped, slow_inserts, stored_ids
from tests.processes import python, wait_for

WORKER = python("-m", "dramatiq", "flask_audit.worker", "--processes", "1", "--threads", "2")
CLOCK = python("-m", "flask", "audit", "scheduler")


def produce(app, audit, n: int, event_type: str = "fault_test") -> list[str]:
    with app.app_context():
        return [audit.log(event_type, user_id=i % 97, metadata={"i": i}) for i in range(n)]


def test_sigkill_mid_batch_is_redelivered_exactly_once(live, service_env, spawn, pg_url):
    app, audit, runtime = live
    env = {**service_env, "AUDIT_VISIBILITY_TIMEOUT_SECONDS": "3"}
    sent = produce(app, audit, 3000)
    slow_inserts(pg_url, 1.0)
    worker = spawn("worker", WORKER, env)
    spawn("clock", CLOCK, env)
    wait_for(lambda: runtime.background_queue.inflight_count() > 0, 30, "a batch in flight")
    wait_for(lambda: inserting(pg_url), 30, "the batch's COPY to be running")  # inside the 1 s INSERT
    worker.signal(signal.SIGKILL)
    worker.proc.wait(10)
    assert runtime.background_queue.inflight_count() > 0, "the killed worker's batch stays claimed"
    fast_inserts(pg_url)
    spawn("worker2", WORKER, env)
    wait_for(lambda: len(stored_ids(pg_url)) == len(sent), 60, "every event stored")
    books = ledger(runtime, pg_url, len(sent))
    assert books["inflight"] == 0 and books["failed"] == 0 and books["dropped"] == 0
    assert set(stored_ids(pg_url)) == set(sent)


def test_sigterm_finishes_the_batch_in_hand(live, service_env, spawn, pg_url):
    app, audit, runtime = live
    sent = produce(app, audit, 2000)
    slow_inserts(pg_url, 1.0)
    worker = spawn("worker", WORKER, service_env)
    clock = spawn("clock", CLOCK, service_env)
    wait_for(lambda: runtime.background_queue.inflight_count() > 0, 30, "a batch in flight")
    clock.stop()
    worker.proc.send_signal(signal.SIGTERM)
    worker.proc.wait(60)
    # Nothing is left claimed: the batch in hand was inserted and acknowledged before exit.
    assert runtime.background_queue.inflight_count() == 0
    assert len(stored_ids(pg_url)) > 0
    fast_inserts(pg_url)
    ledger(runtime, pg_url, len(sent))
    with app.app_context():
        app.test_cli_runner().invoke(args=["audit", "drain"])
    books = ledger(runtime, pg_url, len(sent))
    assert books["stored"] == len(sent)


def test_postgres_down_keeps_events_in_redis_until_it_returns(live, service_env, spawn, pg_url):
    app, audit, runtime = live
    env = {**service_env, "AUDIT_RETRY_MAX_BACKOFF_SECONDS": "2"}
    sent = produce(app, audit, 4000)
    slow_inserts(pg_url, 0.3)
    worker = spawn("worker", WORKER, env)
    spawn("clock", CLOCK, env)
    wait_for(lambda: len(stored_ids(pg_url)) > 0, 30, "the first batches")
    with postgres_stopped():  # cuts the transaction of the batch in flight
        sent += produce(app, audit, 500, "during_outage")  # the request path never touches PostgreSQL
        # workers fail, put their batches back and back off: Dramatiq says so when it retries
        wait_for(lambda: worker.output().count("Retrying message") >= 2, 60, "two retries with back-off")
        wait_for(lambda: runtime.background_queue.inflight_count() == 0, 30, "the batches put back")
        assert runtime.background_queue.failed_length() == 0
        assert runtime.background_queue.depth() > 0
    fast_inserts(pg_url)
    wait_for(lambda: len(stored_ids(pg_url)) == len(sent), 90, "everything stored after the outage")
    books = ledger(runtime, pg_url, len(sent))
    assert books["failed"] == 0 and books["dropped"] == 0
    assert set(stored_ids(pg_url)) == set(sent)
