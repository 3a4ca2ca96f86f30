"""README promises through the path a user takes: the Redis key prefix, the export's filters, the
failed list's limit, the nightly retention job run as the scheduler runs it, and spool replays
run as processes at once."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import redis
from apscheduler.schedulers.background import BackgroundScheduler

from flask_audit.events.event import build_event, decode_entry
from flask_audit.pipeline.clock import Clock
from flask_audit.pipeline.tasks import setup
from flask_audit.storage.partitions import existing_partitions, month_start, partition_name
from tests.conftest import REDIS_URL
from tests.processes import python, wait_for


def test_every_redis_key_the_package_writes_starts_with_the_prefix(
    service_env, spawn, make_app, key_prefix, pg_url
):
    """Queue, batches, failed list, metrics, heartbeats, the clock's lease, alert state and
    Dramatiq's own keys: a real worker and clock on a fresh prefix, then a SCAN of the database."""
    client = redis.Redis.from_url(REDIS_URL)
    before = set(client.scan_iter(count=1000))
    # one failure in the last minute is over a threshold of 0: the alert state stays in Redis
    env = dict(service_env, AUDIT_ALERT_INTERVAL_SECONDS="0.5", AUDIT_ALERT_FAILURES_PER_MINUTE="0")
    app, audit = make_app(AUDIT_REDIS_URL=REDIS_URL, AUDIT_KEY_PREFIX=key_prefix, AUDIT_DATABASE_URL=pg_url)
    runtime = audit.runtime(app)
    with app.app_context():
        for i in range(20):
            audit.log("api_key_created", user_id=i)
        audit.critical("permanent_ban_applied", user_id="7")
    runtime.queue.push([b"not an event"])  # lands in the failed list
    spawn("worker", python("-m", "dramatiq", "worker", "--processes", "1", "--threads", "2"), env)
    spawn("clock", python("-m", "flask", "audit", "scheduler"), env)
    wait_for(lambda: runtime.store.count() == 21 and runtime.queue.failed_length() == 1, 60, "the drain")
    wait_for(lambda: client.exists(key_prefix + "alerts"), 20, "an alert evaluation")
    new_keys = {k.decode() for k in set(client.scan_iter(count=1000)) - before}
    outside = sorted(k for k in new_keys if not k.startswith(key_prefix) and not k.startswith("audit-test-"))
    assert outside == []
    kinds = {k[len(key_prefix) :].split(":")[0] for k in new_keys if k.startswith(key_prefix)}
    assert {"failed", "metrics", "workers", "clock", "alerts", "dramatiq"} <= kinds, kinds


@pytest.fixture
def exported(make_app, fake_redis, pg_url):
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=pg_url)
    base = datetime(2026, 3, 1, tzinfo=timezone.utc)
    events = [
        build_event(
            ["login", "api_key_created"][i % 2],
            event_category=["info", "warning", "critical"][i % 3],
            user_id=f"u{i % 4}",
            resource_type=["api_key", "account"][i % 2],
            resource_id=str(i % 5),
            request_id=f"req-{i % 6}",
            created_at=base + timedelta(hours=i),
        )
        for i in range(60)
    ]
    audit.runtime(app).store.insert(events)
    return app, events


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        ("--user-id", "u1", "user_id"),
        ("--event-type", "login", "event_type"),
        ("--event-category", "critical", "event_category"),
        ("--resource-type", "account", "resource_type"),
        ("--resource-id", "3", "resource_id"),
        ("--request-id", "req-2", "request_id"),
    ],
)
def test_each_export_filter_selects_exactly_its_rows(exported, option, value, field):
    app, events = exported
    result = app.test_cli_runner().invoke(args=["audit", "export", option, value])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    expected = [e.event_id for e in events if getattr(e, field) == value]
    assert [r["event_id"] for r in rows] == expected and expected


def test_export_time_range_and_filters_combine(exported):
    app, events = exported
    args = [
        "audit",
        "export",
        "--since",
        "2026-03-01T10:00:00",
        "--until",
        "2026-03-02T00:00:00",
        "--user-id",
        "u2",
    ]
    rows = [json.loads(line) for line in app.test_cli_runner().invoke(args=args).output.splitlines()]
    since, until = datetime(2026, 3, 1, 10, tzinfo=timezone.utc), datetime(2026, 3, 2, tzinfo=timezone.utc)
    expected = [e.event_id for e in events if since <= e.created_at < until and e.user_id == "u2"]
    assert [r["event_id"] for r in rows] == expected and expected


def test_failed_list_shows_only_the_newest_n(make_app, fake_redis):
    from flask_audit.pipeline.drain import Drainer

    app, audit = make_app(redis_client=fake_redis)
    runtime = audit.runtime(app)
    runtime.queue.push([f"garbage-{i}".encode() for i in range(5)])
    Drainer(runtime.queue, runtime.store).drain_all(10)
    out = app.test_cli_runner().invoke(args=["audit", "failed", "list", "--json", "--limit", "2"]).output
    entries = [json.loads(line)["entry"] for line in out.splitlines()]
    assert entries == ["garbage-3", "garbage-4"]


def test_the_nightly_retention_job_purges_and_creates_the_months_ahead(make_app, fake_redis, pg_url):
    """The job as APScheduler holds it, run as APScheduler runs it: old months dropped, the next
    months there (one removed beforehand comes back)."""
    app, audit = make_app(
        redis_client=fake_redis,
        AUDIT_DATABASE_URL=pg_url,
        AUDIT_PARTITIONING="monthly",
        AUDIT_RETENTION_DAYS=30,
    )
    runtime = audit.runtime(app)
    store = runtime.store
    now = datetime.now(timezone.utc)
    old = now - timedelta(days=120)
    from flask_audit.storage.partitions import ensure_partitions

    ensure_partitions(store, now=old, ahead=0)
    store.insert([build_event("ancient", created_at=old), build_event("recent")])
    next_month = partition_name(month_start(now.year, now.month + 1))
    store.database.execute_sql(f"DROP TABLE {next_month}")
    broker, actors = setup(runtime)
    scheduler = BackgroundScheduler(timezone="UTC")
    Clock(runtime, broker, actors).schedule(scheduler)
    job = scheduler.get_job("audit-retention")
    job.func()  # what the scheduler calls at 03:17
    assert [r.event_type for r in store.recent(10)] == ["recent"]
    assert next_month in existing_partitions(store)
    assert partition_name(month_start(old.year, old.month)) not in existing_partitions(store)


def test_the_named_lists_the_dramatiq_queue_and_the_api_prefix_are_used(make_app, key_prefix, pg_url):
    """AUDIT_QUEUE_KEY, AUDIT_FAILED_KEY, AUDIT_DRAMATIQ_QUEUE and AUDIT_API_URL_PREFIX, set
    together: events wait in the named list, rejects go to the named failed list, the clock's
    drains go to the named Dramatiq queue, and the query API answers under the named prefix."""
    from dramatiq import Worker
    from dramatiq.brokers.stub import StubBroker

    from flask_audit.pipeline.tasks import declare

    client = redis.Redis.from_url(REDIS_URL)
    queue_key, failed_key = f"{key_prefix}events-waiting", f"{key_prefix}events-rejected"
    app, audit = make_app(
        redis_client=client,
        AUDIT_KEY_PREFIX=key_prefix,
        AUDIT_DATABASE_URL=pg_url,
        AUDIT_QUEUE_KEY=queue_key,
        AUDIT_FAILED_KEY=failed_key,
        AUDIT_DRAMATIQ_QUEUE="audit-elsewhere",
        AUDIT_API_URL_PREFIX="/internal/audit",
        AUDIT_API_TOKEN="t0ken",
    )
    runtime = audit.runtime(app)
    with app.app_context():
        ids = [audit.log("api_key_created", user_id=str(i)) for i in range(3)]
    assert client.llen(queue_key) == 3 and not client.exists(f"{key_prefix}queue")
    client.rpush(queue_key, b"{not json")

    broker = StubBroker()
    broker.emit_after("process_boot")
    actors = declare(broker, runtime)
    clock = Clock(runtime, broker, actors)
    clock.elect()
    assert clock.tick() == 1
    assert set(broker.queues) >= {"audit-elsewhere"} and "audit" not in broker.queues
    worker = Worker(broker, worker_timeout=50)
    worker.start()
    try:
        broker.join("audit-elsewhere", timeout=20_000)
        worker.join()
    finally:
        worker.stop()
        broker.close()
    assert client.llen(queue_key) == 0 and client.llen(failed_key) == 1
    assert not client.exists(f"{key_prefix}failed")

    web = app.test_client()
    headers = {"Authorization": "Bearer t0ken"}
    assert web.get("/api/v1/audit-logs", headers=headers).status_code == 404
    body = web.get("/internal/audit?user_id=1", headers=headers).json
    assert [row["event_id"] for row in body["items"]] == [ids[1]]


def test_replay_spool_processes_skip_a_file_another_replay_holds_and_deliver_the_rest_once(
    service_env, key_prefix, pg_url, make_app, tmp_path
):
    """README, "Redis down for the web process": each replay claims a spool file before it
    delivers it. Here a replay still holds one file (the test takes its lock, as a stuck
    replay would), and two ``flask audit replay-spool`` processes run at once: between them
    they deliver every other entry once, and leave the held file alone until it is free."""
    spool = tmp_path / "spool.jsonl"
    files = {
        spool: range(0, 150),
        tmp_path / "spool.jsonl.replay-1-1": range(150, 300),
        tmp_path / "spool.jsonl.replay-2-2": range(300, 450),
    }
    for path, users in files.items():
        path.write_bytes(b"".join(build_event("spooled", user_id=str(u)).to_entry() + b"\n" for u in users))
    held = tmp_path / "spool.jsonl.replay-2-2"
    env = {**service_env, "AUDIT_SPOOL_PATH": str(spool)}
    replay = python("-m", "flask", "audit", "replay-spool")

    def replayed(outputs: list[str]) -> int:
        return sum(int(re.search(r"replayed (\d+) events", out).group(1)) for out in outputs)

    fd = os.open(held, os.O_RDONLY)
    both: list[subprocess.Popen] = []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        both += [subprocess.Popen(replay, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [proc.communicate(timeout=120)[0] for proc in both]
        assert [proc.returncode for proc in both] == [0, 0]
        assert replayed(outputs) == 300, outputs
        assert held.exists() and len(held.read_bytes().splitlines()) == 150
    finally:
        for proc in both:  # stopped by PID whatever failed (communicate's timeout leaves it running)
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        os.close(fd)
    last = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert replayed([last.stdout]) == 150
    app, audit = make_app(AUDIT_REDIS_URL=REDIS_URL, AUDIT_KEY_PREFIX=key_prefix, AUDIT_DATABASE_URL=pg_url)
    queued = redis.Redis.from_url(REDIS_URL).lrange(audit.runtime(app).config.queue_key, 0, -1)
    users = sorted(int(decode_entry(raw)["user_id"]) for raw in queued)
    assert users == list(range(450))  # every entry once: none lost, none delivered twice
    assert not list(tmp_path.glob("spool.jsonl*"))
