"""The breaker and the spool through the user's path: a real Redis server of the test's own is
stopped and started again under `audit.log`, with the database down too."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis

from tests.processes import wait_for


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own on a port it picked itself (port 0 is not allowed for
    Redis, so the port is tried until one binds); stopped and started by the test."""
    import socket

    def start(port: int) -> subprocess.Popen:
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                client.ping()
                return proc
            except redis.ConnectionError:
                time.sleep(0.02)
        proc.kill()
        proc.wait(5)
        raise OSError(f"redis-server did not start on {port}")

    procs: list[subprocess.Popen] = []
    for _ in range(5):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        try:
            procs.append(start(port))
            break
        except OSError:
            continue

    class Server:
        url = f"redis://127.0.0.1:{port}/0"

        def stop(self) -> None:
            procs[-1].terminate()
            procs[-1].wait(10)

        def start(self) -> None:
            procs.append(start(port))

    yield Server()
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


@pytest.mark.expect_swallowed
def test_breaker_doubles_its_cooldown_and_the_spool_replays_by_itself(make_app, own_redis, tmp_path):
    app, audit = make_app(
        AUDIT_REDIS_URL=own_redis.url,
        AUDIT_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none",  # the database is down too
        AUDIT_BREAKER_COOLDOWN_SECONDS=0.3,
        AUDIT_REDIS_TIMEOUT_SECONDS=0.2,
        create_schema=False,
    )
    runtime = audit.runtime(app)
    breaker = runtime.breaker
    own_redis.stop()
    with app.app_context():
        first = audit.log("while_down")  # Redis refuses, the database too: spooled
    assert breaker.is_open and runtime.spool.pending() == 1
    tried_at = []
    original = runtime.push  # the request path's push (through group commit)

    def counting_push(entries):
        tried_at.append(time.monotonic())
        return original(entries)

    runtime.push = counting_push
    start = time.monotonic()
    with app.app_context():
        while time.monotonic() - start < 2.5:
            audit.log("while_down")
            time.sleep(0.01)
    gaps = [b - a for a, b in zip([start, *tried_at], tried_at, strict=False)]
    # probes after 0.3, 0.6, 1.2 s: each failure doubles the cooldown, and nothing in between
    assert len(tried_at) == 3, gaps
    assert 0.25 < gaps[0] < 0.5 and 0.5 < gaps[1] < 0.9 and 1.0 < gaps[2] < 1.6, gaps
    spooled = runtime.spool.pending()
    assert spooled > 100  # every event of those 2.5 s is in the spool, none lost
    own_redis.start()
    time.sleep(max(0.0, breaker._retry_at - time.monotonic()) + 0.05)  # the cooldown passes
    with app.app_context():
        audit.log("after")  # the first success closes the breaker and replays the spool by itself
    assert not breaker.is_open
    wait_for(lambda: runtime.spool.pending() == 0, 10, "the spool to replay by itself")
    client = redis.Redis.from_url(own_redis.url)
    queued = client.lrange(runtime.config.queue_key, 0, -1)
    assert len(queued) == spooled + 1 and any(first.encode() in raw for raw in queued)


@pytest.mark.expect_swallowed
def test_critical_falls_back_to_the_spool_and_raises_only_when_that_fails_too(make_app, own_redis, tmp_path):
    from flask_audit import AuditWriteError

    app, audit = make_app(
        AUDIT_REDIS_URL=own_redis.url,
        AUDIT_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none",
        AUDIT_REDIS_TIMEOUT_SECONDS=0.2,
        create_schema=False,
    )
    runtime = audit.runtime(app)
    own_redis.stop()
    with app.app_context():
        event_id = audit.critical("permanent_ban_applied", user_id="7")
    from pathlib import Path

    assert runtime.spool.pending() == 1 and event_id.encode() in Path(runtime.spool.path).read_bytes()
    (tmp_path / "a-file").write_text("")
    runtime.spool.path = str(
        tmp_path / "a-file" / "spool.jsonl"
    )  # a spool that cannot be written (even as root)
    with app.app_context(), pytest.raises(AuditWriteError, match="database.*redis.*spool"):
        audit.critical("permanent_ban_applied", user_id="8")
