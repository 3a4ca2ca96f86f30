"""The clock's jobs one by one, as the scheduler runs them: only the leader acts, each job logs
what it did, a failing job never stops the clock, and `run_clock` schedules them all."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import pytest
from apscheduler.schedulers.blocking import BlockingScheduler
from dramatiq.brokers.stub import StubBroker

from flask_audit.pipeline import clock as clock_module
from flask_audit.pipeline.clock import Clock, run_clock
from flask_audit.pipeline.tasks import declare
from tests.processes import wait_for

JOBS = {
    "audit-elect",
    "audit-tick",
    "audit-reap",
    "audit-housekeeping",
    "audit-alerts",
    "audit-seal",
    "audit-verify",
    "audit-retention",
}


@pytest.fixture
def clocks(make_app, fake_redis):
    """An app on fakeredis and SQLite with two clocks; the first one leads."""
    app, audit = make_app(redis_client=fake_redis, AUDIT_VISIBILITY_TIMEOUT_SECONDS=5)
    runtime = audit.runtime(app)
    broker = StubBroker()
    actors = declare(broker, runtime)
    leader, follower = Clock(runtime, broker, actors), Clock(runtime, broker, actors)
    assert leader.elect() and not follower.elect()
    yield app, audit, runtime, leader, follower
    broker.close()


def later(monkeypatch, seconds: float) -> None:
    """The queue's clock, ``seconds`` ahead: claimed batches look overdue."""
    real = time.time
    monkeypatch.setattr("flask_audit.queue.redis_queue.time", SimpleNamespace(time=lambda: real() + seconds))


def test_only_the_leader_reaps_and_it_says_how_many(clocks, monkeypatch, caplog):
    app, audit, runtime, leader, follower = clocks
    with app.app_context():
        for i in range(3):
            audit.log("x", user_id=i)
    assert runtime.queue.claim(10) is not None  # a worker claims the three, then dies
    later(monkeypatch, 60)
    assert follower.reap() == 0
    assert runtime.queue.depth() == 0
    with caplog.at_level(logging.WARNING, logger="flask_audit.pipeline.clock"):
        assert leader.reap() == 3
    assert runtime.queue.depth() == 3
    assert caplog.messages == ["returned 3 events of unacknowledged batches to the queue"]
    caplog.clear()
    assert leader.reap() == 0
    assert "returned" not in caplog.text  # nothing to say when nothing came back


def test_only_the_leader_replays_the_spool_and_prunes_dead_workers(clocks, caplog):
    app, audit, runtime, leader, follower = clocks
    with app.app_context():
        event_id = audit.log("spooled")
    entry = runtime.queue.client.lpop(runtime.queue.queue_key)
    runtime.spool.append(entry)  # as if Redis had been down when it was logged
    workers = runtime.metrics.workers_key
    runtime.metrics.client.hset(workers, mapping={"dead": time.time() - 3600, "alive": time.time()})
    follower.housekeeping()
    assert runtime.spool.pending() == 1 and runtime.queue.depth() == 0
    assert runtime.metrics.client.hlen(workers) == 2
    with caplog.at_level(logging.INFO, logger="flask_audit.pipeline.clock"):
        leader.housekeeping()
    assert runtime.spool.pending() == 0 and runtime.queue.depth() == 1
    assert caplog.messages == ["replayed 1 spooled events"]
    assert set(runtime.metrics.client.hkeys(workers)) == {b"alive"}
    assert event_id in runtime.queue.client.lindex(runtime.queue.queue_key, 0).decode()


def test_only_the_leader_alerts_and_purges(clocks):
    app, audit, runtime, leader, follower = clocks
    with app.app_context():
        audit.log("x")
    assert follower.alert() == [] and follower.purge() == 0 and follower.tick() == 0
    assert runtime.queue.depth() == 1


def test_purge_logs_what_it_removed_in_chunks(make_app, fake_redis, monkeypatch, caplog):
    """Rows past retention go, in chunks of AUDIT_PURGE_CHUNK, and the job says so."""
    from datetime import datetime, timedelta, timezone

    from flask_audit.events.event import build_event

    app, audit = make_app(redis_client=fake_redis, AUDIT_RETENTION_DAYS=30, AUDIT_PURGE_CHUNK=2)
    runtime = audit.runtime(app)
    old = datetime.now(timezone.utc) - timedelta(days=40)
    runtime.store.insert([build_event("old", created_at=old) for _ in range(5)] + [build_event("new")])
    deletes: list[int] = []
    real_expire = clock_module.expire

    def counting(store, before, chunk):
        deletes.append(chunk)
        return real_expire(store, before, chunk=chunk)

    broker = StubBroker()
    clock = Clock(runtime, broker, declare(broker, runtime))
    clock.elect()
    monkeypatch.setattr(clock_module, "expire", counting)
    with caplog.at_level(logging.INFO, logger="flask_audit.pipeline.clock"):
        assert clock.purge() == 5
    assert deletes == [2]
    assert [r.event_type for r in runtime.store.recent(10)] == ["new"]
    assert caplog.messages == ["retention: 5 rows older than 30 days purged; partitions dropped: none"]


def test_a_failing_job_is_logged_by_name_and_the_clock_lives_on(caplog):
    calls = []

    def tick():
        calls.append(1)
        raise ConnectionError("redis is down")

    job = Clock._safely(tick)
    assert job.__name__ == job.__qualname__ == "audit-tick"
    with caplog.at_level(logging.WARNING, logger="flask_audit.pipeline.clock"):
        job()
        job()
    assert calls == [1, 1]
    assert caplog.messages == ["tick failed: redis is down"] * 2


def test_run_clock_schedules_every_job_and_stops_on_interrupt(clocks, monkeypatch, caplog):
    """`flask audit scheduler` runs this: every job on a UTC scheduler, APScheduler's per-run
    chatter silenced, a start line in the log; an interrupt ends it quietly."""
    app, audit, runtime, leader, _ = clocks
    started: list[BlockingScheduler] = []

    class Recorded(BlockingScheduler):
        def start(self, *args, **kwargs):
            started.append(self)
            return super().start(*args, **kwargs)

    monkeypatch.setattr(clock_module, "BlockingScheduler", Recorded)
    logging.getLogger("apscheduler").setLevel(logging.NOTSET)
    leader_key = runtime.config.key("clock:leader")
    runtime.queue.client.delete(leader_key)  # the new clock leads
    with caplog.at_level(logging.INFO, logger="flask_audit.pipeline.clock"):
        thread = threading.Thread(target=run_clock, args=(runtime, leader.broker, leader.actors), daemon=True)
        thread.start()
        wait_for(lambda: started and started[0].running, 10, "the scheduler to start")
        scheduler = started[0]
        assert {job.id for job in scheduler.get_jobs()} == JOBS
        assert str(scheduler.timezone) == "UTC"
        assert logging.getLogger("apscheduler").level == logging.WARNING
        with app.app_context():
            audit.log("x")
        queue_name = runtime.config.dramatiq_queue
        wait_for(lambda: leader.broker.queues[queue_name].qsize(), 10, "a drain sent by the running clock")
        scheduler.shutdown(wait=False)
        thread.join(10)
    assert not thread.is_alive()
    interval = runtime.config.drain_interval_seconds
    assert f"audit clock started (interval {interval:.2f}s)" in caplog.messages


def test_an_interrupt_ends_run_clock_without_a_traceback(clocks, monkeypatch):
    app, audit, runtime, leader, _ = clocks

    class Interrupted(BlockingScheduler):
        def start(self, *args, **kwargs):
            raise KeyboardInterrupt

    monkeypatch.setattr(clock_module, "BlockingScheduler", Interrupted)
    run_clock(runtime, leader.broker, leader.actors)  # returns; a Ctrl-C is the normal way out


def test_a_clock_leads_only_once_elected_and_says_when_it_takes_or_loses_the_lead(
    make_app, fake_redis, caplog
):
    app, audit = make_app(redis_client=fake_redis)
    runtime = audit.runtime(app)
    broker = StubBroker()
    actors = declare(broker, runtime)
    first, second = Clock(runtime, broker, actors), Clock(runtime, broker, actors)
    assert first.is_leader is False and first.tick() == 0  # not before it has won an election
    lease = runtime.config.key("clock:leader")
    with caplog.at_level(logging.INFO, logger="flask_audit.pipeline.clock"):
        assert first.elect() is True
        assert first.elect() is True  # renewing says nothing
        assert 5500 < fake_redis.pttl(lease) <= 6000  # three renewal intervals of 2 s
        fake_redis.delete(lease)
        assert second.elect() is True and first.elect() is False
    assert caplog.messages == [
        f"clock {first.token[:8]} took the lead",
        f"clock {second.token[:8]} took the lead",
        f"clock {first.token[:8]} lost the lead",
    ]


def test_a_clock_that_cannot_reach_redis_steps_down(make_app, fake_redis, monkeypatch):
    import redis

    app, audit = make_app(redis_client=fake_redis)
    runtime = audit.runtime(app)
    broker = StubBroker()
    clock = Clock(runtime, broker, declare(broker, runtime))
    assert clock.elect()

    def down(*args, **kwargs):
        raise redis.ConnectionError("redis is down")

    monkeypatch.setattr(clock, "_lead", down)
    with pytest.raises(redis.ConnectionError):
        clock.elect()
    assert clock.is_leader is False and clock.tick() == 0


def test_alert_state_lives_under_the_prefix(make_app, fake_redis):
    app, audit = make_app(
        redis_client=fake_redis, AUDIT_KEY_PREFIX="tenant-a:", AUDIT_ALERT_QUEUE_THRESHOLD=0
    )
    runtime = audit.runtime(app)
    broker = StubBroker()
    clock = Clock(runtime, broker, declare(broker, runtime))
    clock.elect()
    with app.app_context():
        audit.log("x")
    clock.alert()
    assert fake_redis.hkeys("tenant-a:alerts") == [b"queue_backed_up"]
    assert fake_redis.exists("tenant-a:clock:leader")
