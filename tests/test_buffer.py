"""Buffered mode: audit.log returns before Redis is touched; the buffer reaches Redis promptly,
in one round trip per flush, and is flushed at exit."""

import time

import pytest

from flask_audit.events.event import decode_entry
from tests.processes import wait_for


def test_buffered_events_reach_redis_within_the_flush_interval(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis, AUDIT_BUFFERED=True, AUDIT_BUFFER_FLUSH_MS=20)
    runtime = audit.runtime(app)
    with app.app_context():
        ids = [audit.log("x", user_id=i) for i in range(50)]
    wait_for(lambda: runtime.queue.depth() == 50, 5, "the buffer to be pushed")
    assert runtime.buffer.pending() == 0

    assert [decode_entry(e)["event_id"] for e in reversed(fake_redis.lrange("audit:queue", 0, -1))] == ids


def test_a_full_buffer_flushes_on_the_callers_thread(make_app, fake_redis):
    app, audit = make_app(
        redis_client=fake_redis, AUDIT_BUFFERED=True, AUDIT_BUFFER_FLUSH_MS=60_000, AUDIT_BUFFER_MAX_EVENTS=10
    )
    runtime = audit.runtime(app)
    with app.app_context():
        for i in range(25):
            audit.log("x", user_id=i)
    assert runtime.queue.depth() == 20 and runtime.buffer.pending() == 5
    runtime.buffer.close()  # what atexit does
    assert runtime.queue.depth() == 25


def test_one_round_trip_per_flush(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis, AUDIT_BUFFERED=True, AUDIT_BUFFER_FLUSH_MS=60_000)
    runtime = audit.runtime(app)
    calls = []
    push = runtime.queue.push
    runtime.queue.push = lambda entries: calls.append(len(entries)) or push(entries)
    with app.app_context():
        for i in range(300):
            audit.log("x", user_id=i)
    runtime.buffer.flush()
    assert calls == [300]


@pytest.mark.expect_swallowed
def test_buffered_events_fall_back_when_redis_is_down(make_app):
    app, audit = make_app(
        AUDIT_REDIS_URL="redis://127.0.0.1:1/0", AUDIT_BUFFERED=True, AUDIT_BUFFER_FLUSH_MS=60_000
    )
    runtime = audit.runtime(app)
    started = time.perf_counter()
    with app.app_context():
        ids = [audit.log("x", user_id=i) for i in range(30)]
    assert time.perf_counter() - started < 0.5  # nothing waited on Redis
    runtime.buffer.flush()
    assert sorted(runtime.store.event_ids()) == sorted(ids)  # written through in one batch


def test_no_entry_is_lost_when_threads_switch_between_add_and_flush():
    """A million entries from 8 threads while the flush thread swaps the buffer every millisecond,
    with the interpreter switching threads as often as it can: every entry is delivered once."""
    import sys
    import threading

    from flask_audit.ingest.buffer import EventBuffer

    delivered: list[int] = []

    def deliver(entries: list[bytes]) -> str:
        delivered.append(len(entries))
        return "queued"

    buffer = EventBuffer(deliver, flush_seconds=0.001, max_events=5000)
    per_thread, threads = 125_000, 8
    entry = b"{}"
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:

        def produce() -> None:
            add = buffer.add
            for _ in range(per_thread):
                add(entry)

        workers = [threading.Thread(target=produce) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(previous)
        buffer.close()
    assert sum(delivered) == per_thread * threads
    assert buffer.pending() == 0


def test_a_forked_child_runs_a_flush_thread_of_its_own():
    """gunicorn forks its workers (after the app is built, with --preload): the parent's flush
    thread does not exist in the child, so the child's first event starts one there."""
    import os
    import threading

    from flask_audit import forks
    from flask_audit.ingest.buffer import EventBuffer

    buffer = EventBuffer(lambda entries: None, flush_seconds=0.01, max_events=1000)
    buffer.add(b"{}")  # the parent's thread
    generation = forks.generation
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no flush thread until an event arrives, then one
        try:
            before = any(t.name == "audit-buffer" for t in threading.enumerate())
            buffer.add(b"{}")
            after = any(t.name == "audit-buffer" for t in threading.enumerate())
            os.write(write, f"{forks.generation - generation} {before} {after}".encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 100) == b"1 False True"
    assert forks.generation == generation  # the parent's count is its own
    buffer.close()
