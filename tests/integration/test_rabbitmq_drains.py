"""Drain messages on RabbitMQ (AUDIT_BROKER_URL=amqp://...): the clock's bound on pending drains
holds while no worker runs and while a worker holds retries, and a worker drains the queue."""

from __future__ import annotations

import time

import pytest
from dramatiq import Worker

from flask_audit.pipeline.brokers import PendingDrains, build_broker, pending_drains
from flask_audit.pipeline.clock import Clock
from flask_audit.pipeline.tasks import declare


@pytest.fixture
def rabbit(make_app, real_redis_client, key_prefix, rabbitmq_queue):
    def start(database_url: str):
        url, queue = rabbitmq_queue
        app, audit = make_app(
            redis_client=real_redis_client,
            create_schema=not database_url.startswith("postgresql://nobody"),
            AUDIT_KEY_PREFIX=key_prefix,
            AUDIT_DATABASE_URL=database_url,
            AUDIT_BROKER_URL=url,
            AUDIT_DRAMATIQ_QUEUE=queue,
            AUDIT_MAX_PENDING_DRAINS=3,
        )
        runtime = audit.runtime(app)
        broker = build_broker(runtime)
        broker.emit_after("process_boot")
        actors = declare(broker, runtime)
        clock = Clock(runtime, broker, actors)
        assert clock.elect()
        started.append(broker)
        return app, audit, runtime, broker, clock

    started: list = []
    yield start
    for broker in started:
        broker.close()


def log_many(app, audit, count: int) -> list[str]:
    with app.app_context():
        return [audit.log("x", user_id=i) for i in range(count)]


def test_no_worker_the_bound_holds_by_the_brokers_own_count(rabbit, pg_url):
    app, audit, runtime, broker, clock = rabbit(pg_url)
    log_many(app, audit, 1200)
    assert clock.tick() == 3
    for _ in range(5):
        assert clock.tick() == 0
    ready, delayed, _ = broker.get_queue_message_counts(runtime.config.dramatiq_queue)
    assert (ready, delayed) == (3, 0)
    assert pending_drains(broker, runtime.config.dramatiq_queue) == 3


def test_a_worker_drains_everything_and_nothing_stays_counted(rabbit, pg_url):
    app, audit, runtime, broker, clock = rabbit(pg_url)
    ids = log_many(app, audit, 700)
    worker = Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while runtime.queue.depth() and time.monotonic() < deadline:
            clock.tick()
            time.sleep(0.2)
        broker.join(runtime.config.dramatiq_queue, timeout=30_000)
        worker.join()
    finally:
        worker.stop()
    assert sorted(runtime.store.event_ids()) == sorted(ids)
    tracker = next(m for m in broker.middleware if isinstance(m, PendingDrains))
    assert tracker.count() == 0
    assert pending_drains(broker, runtime.config.dramatiq_queue) == 0


def test_retries_a_worker_holds_still_count_so_drains_do_not_pile_up(rabbit):
    """The database is unreachable: every drain fails and waits for its retry in the worker,
    unacknowledged, where RabbitMQ's ready count no longer sees it. The tracker still does, and
    failed drains send no successors, so the count stops growing: the clock's 3, plus at most one
    successor per worker thread sent before the first failure was known."""
    app, audit, runtime, broker, clock = rabbit("postgresql://nobody@127.0.0.1:1/none")
    log_many(app, audit, 1200)
    tracker = next(m for m in broker.middleware if isinstance(m, PendingDrains))
    worker = Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        sent, counts = 0, []
        for tick in range(30):
            sent += clock.tick()
            time.sleep(0.2)
            if tick in (14, 29):
                counts.append(tracker.count())
        ready, delayed, _ = broker.get_queue_message_counts(runtime.config.dramatiq_queue)
    finally:
        worker.stop()
    assert sent == 3
    assert counts[0] == counts[1] <= 3 + 2
    assert ready + delayed < counts[1]  # the broker alone would have let the clock send more
    assert runtime.queue.depth() == 1200  # every failed claim went back to the queue
