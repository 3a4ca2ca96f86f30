"""The write path's fallbacks one by one: what each swallows, where each event goes, what each
counts, and the spool's replay into a queue that is full."""

from __future__ import annotations

import logging
import threading

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_audit.errors import AuditError

DOWN_DB = "postgresql://postgres@127.0.0.1:1/none"


def down_redis() -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))


@pytest.mark.parametrize(("policy", "stored", "counted"), [("direct", 3, "overflow"), ("drop", 0, "dropped")])
def test_a_spool_replayed_into_a_full_queue_follows_the_overflow_policy(
    make_app, fake_redis, policy, stored, counted
):
    app, audit = make_app(redis_client=fake_redis, AUDIT_MAX_QUEUE_LENGTH=2, AUDIT_OVERFLOW_POLICY=policy)
    runtime = audit.runtime(app)
    from flask_audit.events.event import build_event

    for i in range(5):
        runtime.spool.append(build_event("spooled", user_id=str(i)).to_entry())
    assert runtime.write_path.replay_spool() == 5
    assert runtime.queue.depth() == 2 and runtime.store.count() == stored
    assert runtime.spool.pending() == 0
    assert runtime.metrics.snapshot().totals[counted] == 3


@pytest.mark.expect_swallowed
def test_redis_and_the_database_down_the_event_waits_in_the_spool(make_app, swallowed_errors):
    app, audit = make_app(redis_client=down_redis(), AUDIT_DATABASE_URL=DOWN_DB, create_schema=False)
    runtime = audit.runtime(app)
    with app.app_context():
        event_id = audit.log("x")
    assert [where for _, where in swallowed_errors] == ["redis push", "database write-through"]
    assert runtime.spool.pending() == 1
    with app.app_context():
        audit.log("y")  # the breaker is open now: straight to the write-through, then the spool
    assert [where for _, where in swallowed_errors][2:] == ["database write-through"]
    assert runtime.spool.pending() == 2 and event_id


@pytest.mark.expect_swallowed
def test_when_even_the_spool_refuses_the_event_is_logged_whole(make_app, tmp_path, swallowed_errors, caplog):
    (tmp_path / "a-file").write_text("")
    app, audit = make_app(
        redis_client=down_redis(),
        AUDIT_DATABASE_URL=DOWN_DB,
        AUDIT_SPOOL_PATH=str(tmp_path / "a-file" / "spool.jsonl"),
        create_schema=False,
    )
    with app.app_context(), caplog.at_level(logging.ERROR, logger="flask_audit.safety"):
        event_id = audit.log("x")
    assert [where for _, where in swallowed_errors] == [
        "redis push",
        "database write-through",
        "spool append",
    ]
    assert isinstance(swallowed_errors[2][0], OSError)  # the spool's own error, as it happened
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert (
        message.startswith("flask_audit: event lost, no store would take it: [b'2\\t") and event_id in message
    )


@pytest.mark.expect_swallowed
def test_redis_back_replays_the_spool_on_a_daemon_thread_whose_failure_is_swallowed(
    make_app, fake_redis, monkeypatch, swallowed_errors
):
    from flask_audit.ingest import write_path as module

    app, audit = make_app(redis_client=fake_redis)
    runtime = audit.runtime(app)
    from flask_audit.events.event import build_event

    runtime.spool.append(build_event("spooled").to_entry())

    def refuse(entries):
        raise redis.ConnectionError("the background client cannot reach Redis yet")

    monkeypatch.setattr(runtime.background_queue, "push", refuse)
    runtime.breaker.record_failure()  # Redis was down
    runtime.breaker._retry_at = 0  # and its cooldown is over
    started: list[threading.Thread] = []

    class Recorded(threading.Thread):
        def start(self) -> None:
            started.append(self)
            super().start()

    monkeypatch.setattr(module.threading, "Thread", Recorded)
    with app.app_context():
        audit.log("x")  # succeeds: the breaker closes and the spool is replayed in the background
    (thread,) = started
    thread.join(5)
    assert (thread.name, thread.daemon) == ("audit-spool-replay", True)
    assert [where for _, where in swallowed_errors] == ["spool replay"]
    assert isinstance(swallowed_errors[0][0], redis.ConnectionError)
    assert runtime.spool.pending() == 1  # kept: it could not be delivered


@pytest.mark.expect_swallowed
def test_a_buffered_flush_counts_every_entry_it_writes_through_or_spools(
    make_app, tmp_path, swallowed_errors
):
    """Several entries at once: each fallback counts them all, and says what it swallowed."""
    app, audit = make_app(redis_client=down_redis(), AUDIT_BUFFERED=True, AUDIT_BUFFER_FLUSH_MS=600000)
    runtime = audit.runtime(app)
    with app.app_context():
        for i in range(3):
            audit.log("x", user_id=str(i))
    runtime.buffer.flush()
    assert runtime.store.count() == 3
    assert runtime.write_path.counts._unsent["write_through"] == 3  # Redis is down: kept for later
    (exc, where), *_ = swallowed_errors
    assert isinstance(exc, redis.ConnectionError) and where == "redis push"

    down_db, down_db_audit = make_app(
        redis_client=down_redis(), AUDIT_DATABASE_URL=DOWN_DB, AUDIT_BUFFERED=True, create_schema=False
    )
    runtime = down_db_audit.runtime(down_db)
    with down_db.app_context():
        for i in range(3):
            down_db_audit.log("y", user_id=str(i))
    runtime.buffer.flush()
    assert runtime.spool.pending() == 3
    assert runtime.write_path.counts._unsent["spooled"] == 3
    assert any(
        isinstance(exc, AuditError) and where == "database write-through" for exc, where in swallowed_errors
    )


def test_two_replays_at_once_deliver_and_count_each_spooled_entry_once(tmp_path):
    """A replay claims each file it delivers; a second replay meanwhile (another thread here,
    another process in production) skips it instead of delivering and counting it again."""
    import threading

    from flask_audit.ingest.spool import Spool

    spool = Spool(str(tmp_path / "spool.jsonl"))
    for i in range(5):
        spool.append(b'{"n": %d}' % i)
    inside, release = threading.Event(), threading.Event()
    first: list[bytes] = []

    def slow(entries: list[bytes]) -> None:
        inside.set()
        assert release.wait(10)
        first.extend(entries)

    counted: list[int] = []
    worker = threading.Thread(target=lambda: counted.append(spool.replay(slow)))
    worker.start()
    try:
        assert inside.wait(10)
        second: list[bytes] = []
        assert spool.replay(second.extend) == 0 and second == []
    finally:
        release.set()
        worker.join(10)
    assert counted == [5] and first == [b'{"n": %d}' % i for i in range(5)]
    assert spool.pending() == 0


def test_a_kept_rest_survives_the_next_failed_replay_of_the_same_process(tmp_path):
    """A failed replay keeps what it did not deliver; the next replay of the same process renames
    the spool to a name of its own, never onto that rest."""
    from flask_audit.ingest.spool import Spool

    spool = Spool(str(tmp_path / "spool.jsonl"))
    spool.append(b"a")
    spool.append(b"b")

    def refuse(entries: list[bytes]) -> None:
        raise ConnectionError("still down")

    with pytest.raises(ConnectionError):
        spool.replay(refuse)
    spool.append(b"c")
    with pytest.raises(ConnectionError):
        spool.replay(refuse)
    assert spool.pending() == 3
    delivered: list[bytes] = []
    assert spool.replay(delivered.extend) == 3 and sorted(delivered) == [b"a", b"b", b"c"]


def test_a_spool_file_a_replay_removes_meanwhile_is_neither_counted_nor_an_error(tmp_path, monkeypatch):
    """Counting and replaying list the files, then open them: a replay elsewhere (another thread,
    another process) may finish with one in between. Seen in CI as a FileNotFoundError."""
    from flask_audit.ingest.spool import Spool

    spool = Spool(str(tmp_path / "spool.jsonl"))
    spool.append(b'{"a": 1}')
    spool.append(b'{"a": 2}')
    listed = Spool._files
    gone = str(tmp_path / "spool.jsonl.replay-1")  # listed, then removed before it is opened
    monkeypatch.setattr(
        Spool, "_files", lambda self, replaying_only=False: [gone, *listed(self, replaying_only)]
    )
    assert spool.pending() == 2
    delivered: list[bytes] = []
    assert spool.replay(delivered.extend) == 2 and delivered == [b'{"a": 1}', b'{"a": 2}']
