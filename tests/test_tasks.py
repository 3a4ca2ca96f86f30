"""The Dramatiq actor and the clock, in-process with StubBroker and Worker."""

import logging
import re
import time

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from flask_audit.errors import TransientStoreError
from flask_audit.pipeline.brokers import pending_drains
from flask_audit.pipeline.clock import Clock
from flask_audit.pipeline.tasks import declare


@pytest.fixture
def stub(make_app, any_redis, any_db_url):
    client, prefix = any_redis
    app, audit = make_app(
        redis_client=client,
        AUDIT_KEY_PREFIX=prefix,
        AUDIT_DATABASE_URL=any_db_url,
        AUDIT_MAX_PENDING_DRAINS=4,
    )
    runtime = audit.runtime(app)
    broker = StubBroker()
    broker.emit_after("process_boot")
    actors = declare(broker, runtime)
    clock = Clock(runtime, broker, actors)
    yield app, audit, runtime, broker, clock
    broker.close()


def test_clock_sizes_batches_by_depth_and_bounds_pending_drains(stub):
    app, audit, runtime, broker, clock = stub
    assert clock.elect()
    with app.app_context():
        for i in range(1200):
            audit.log("x", user_id=i)
    assert clock.tick() == 4  # ceil(1200 / 300) = 4, also the bound
    assert runtime.metrics.snapshot().current_batch_size == 300
    assert pending_drains(broker, runtime.config.dramatiq_queue) == 4
    assert clock.tick() == 0  # still pending: nothing more is sent


def test_clock_sizes_batches_by_the_last_minutes_traffic_too(stub):
    """A short queue in a busy minute gets the design's traffic size: 300 from 1,000 events
    stored a minute, 1,000 from 10,000."""
    app, audit, runtime, broker, clock = stub
    assert clock.elect()
    with app.app_context():
        for i in range(50):
            audit.log("x", user_id=i)
    assert clock.tick() == 1
    assert runtime.metrics.snapshot().current_batch_size == 100
    broker.flush_all()
    runtime.metrics.incr({"inserted": 1500})
    assert clock.tick() == 1
    assert runtime.metrics.snapshot().current_batch_size == 300
    broker.flush_all()
    runtime.metrics.incr({"inserted": 9000})
    assert runtime.metrics.inserts_last_minute() == 10500
    assert clock.tick() == 1
    assert runtime.metrics.snapshot().current_batch_size == 1000


def test_a_chained_drain_keeps_the_size_the_traffic_gave_it(stub):
    """A drain of 1,000 over a backlog of 2,600 sends one successor of 1,000 (not the 300 the
    remaining depth alone would pick): two batches store 2,000 and leave 600 for the clock."""
    app, audit, runtime, broker, clock = stub
    with app.app_context():
        for i in range(2600):
            audit.log("x", user_id=i)
    worker = Worker(broker, worker_timeout=50)
    worker.start()
    try:
        clock.actors.drain.send(1000)
        broker.join(runtime.config.dramatiq_queue)
        worker.join()
    finally:
        worker.stop()
    snapshot = runtime.metrics.snapshot()
    assert (snapshot.totals["batches"], snapshot.totals["inserted"], snapshot.queue_length) == (2, 2000, 600)


def test_worker_drains_what_the_clock_sends(stub):
    app, audit, runtime, broker, clock = stub
    clock.elect()
    with app.app_context():
        ids = [audit.log("x", user_id=i) for i in range(250)]
    worker = Worker(broker, worker_timeout=50)
    worker.start()
    try:
        clock.tick()
        broker.join(runtime.config.dramatiq_queue)
        worker.join()
    finally:
        worker.stop()
    assert sorted(runtime.store.event_ids()) == sorted(ids)
    assert runtime.queue.depth() == 0
    snapshot = runtime.metrics.snapshot()
    assert snapshot.inserts_last_minute == 250 and snapshot.totals["inserted"] == 250


def test_only_one_clock_leads(stub):
    app, audit, runtime, broker, clock = stub
    other = Clock(runtime, broker, clock.actors)
    assert clock.elect() is True
    assert other.elect() is False
    with app.app_context():
        audit.log("x")
    assert other.tick() == 0 and other.reap() == 0
    assert clock.tick() == 1


class FlakyStore:
    """A store whose database is "down" for the first ``outages`` inserts."""

    def __init__(self, store, outages):
        self.store, self.outages, self.attempts = store, outages, 0
        self.is_postgres = store.is_postgres

    def write_lines(self, body, count):
        self.attempts += 1
        if self.attempts <= self.outages:
            raise TransientStoreError("database unavailable: connection refused")
        return self.store.write_lines(body, count)

    def write_batch(self, events):
        self.attempts += 1
        if self.attempts <= self.outages:
            raise TransientStoreError("database unavailable: connection refused")
        return self.store.write_batch(events)

    def close(self):
        self.store.close()


def test_database_outage_retries_with_backoff_and_loses_nothing(make_app, fake_redis, tmp_path, caplog):
    """Three refusals: three retries, each delay within AUDIT_RETRY_MAX_BACKOFF_SECONDS (uncapped,
    the third would wait 4 to 8 s), then every event lands."""
    caplog.set_level(logging.INFO, logger="dramatiq")
    app, audit = make_app(redis_client=fake_redis, AUDIT_RETRY_MAX_BACKOFF_SECONDS=1)
    runtime = audit.runtime(app)
    flaky = FlakyStore(runtime.store, outages=3)
    runtime.__dict__["store"] = flaky
    broker = StubBroker()
    broker.emit_after("process_boot")
    actors = declare(broker, runtime)
    with app.app_context():
        ids = [audit.log("x", user_id=i) for i in range(10)]
    worker = Worker(broker, worker_timeout=50)
    worker.start()
    try:
        actors.drain.send(100)
        broker.join(runtime.config.dramatiq_queue, timeout=20_000)
        worker.join()
    finally:
        worker.stop()
        broker.close()
    assert flaky.attempts == 4  # three refusals, retried with back-off, then success
    delays = [int(m) for m in re.findall(r"Retrying message \S+ in (\d+) milliseconds", caplog.text)]
    assert len(delays) == 3 and all(500 <= d <= 1000 for d in delays)
    assert sorted(flaky.store.event_ids()) == sorted(ids)
    assert runtime.queue.failed_length() == 0 and runtime.queue.depth() == 0


def test_failed_drains_send_no_successors_so_pending_drains_stop_growing(make_app, fake_redis):
    """While the database is down, a drain that claimed a full batch fails and is retried: had it
    sent its successor anyway, every failed attempt would add a message."""
    from dramatiq.middleware import Middleware

    class Sent(Middleware):
        def __init__(self):
            self.ids = set()

        def after_enqueue(self, broker, message, delay):
            self.ids.add(message.message_id)  # a retry keeps its id: only new messages count

    app, audit = make_app(
        redis_client=fake_redis,
        create_schema=False,
        AUDIT_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        AUDIT_MAX_PENDING_DRAINS=2,
    )
    runtime = audit.runtime(app)
    broker = StubBroker()
    sent = Sent()
    broker.add_middleware(sent)
    broker.emit_after("process_boot")
    actors = declare(broker, runtime)
    clock = Clock(runtime, broker, actors)
    clock.elect()
    with app.app_context():
        for i in range(1000):
            audit.log("x", user_id=i)
    worker = Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        assert clock.tick() == 2
        time.sleep(3)  # several failed attempts each, with the back-off from 0.5 s
    finally:
        worker.stop()
        broker.close()
    assert len(sent.ids) <= 2 + 1  # the clock's 2, and one successor sent before the first failure
    assert runtime.queue.depth() == 1000


def test_a_worker_takes_a_new_id_when_the_brokers_redis_server_changes(make_app, fake_redis, caplog):
    """After a failover the new master may still file messages this worker acknowledged under its
    id; a new id lets Dramatiq requeue them once the old one's heartbeat times out."""
    from dramatiq.brokers.redis import RedisBroker

    from flask_audit.pipeline.tasks import FollowRedisServer

    class Server:
        run_id = "a" * 40

        def info(self, section):
            assert section == "server"
            return {"run_id": self.run_id}

    app, audit = make_app(redis_client=fake_redis)
    broker = RedisBroker(client=fake_redis)
    server = Server()
    broker.client = server
    follow = FollowRedisServer(audit.runtime(app), broker)
    first = broker.broker_id
    assert follow.check() is False and follow.check() is False  # the same server
    assert broker.broker_id == first
    server.run_id = "b" * 40  # a replica was promoted
    with caplog.at_level(logging.WARNING):
        assert follow.check() is True
    assert broker.broker_id != first and first in caplog.text
    assert follow.check() is False


def test_a_redis_broker_gets_the_follower_and_others_do_not(make_app, fake_redis):
    from dramatiq.brokers.redis import RedisBroker

    from flask_audit.pipeline.tasks import FollowRedisServer

    app, audit = make_app(redis_client=fake_redis)
    redis_broker = RedisBroker(client=fake_redis)
    declare(redis_broker, audit.runtime(app))
    assert any(isinstance(m, FollowRedisServer) for m in redis_broker.middleware)
    stub = StubBroker()
    declare(stub, audit.runtime(app))
    assert not any(isinstance(m, FollowRedisServer) for m in stub.middleware)
