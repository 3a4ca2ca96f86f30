"""Many hosts on one Redis and one database: two web servers, two workers and two clocks, each
process with Redis clients of its own, under load; the leading clock is SIGKILLed and the standby
takes the lead within the lease, and every event answered lands once."""

from __future__ import annotations

import signal
import time

import psycopg2
import redis

from flask_audit.pipeline.clock import LEAD_INTERVAL
from tests.conftest import REDIS_URL
from tests.load import Load, answers
from tests.processes import gunicorn, listening_socket, python, wait_for

#: the clock's lease: three renewal intervals
LEASE = LEAD_INTERVAL * 3


def test_two_of_everything_and_the_leading_clock_killed_under_load(service_env, spawn, pg_url):
    client = redis.Redis.from_url(REDIS_URL)
    leader_key = service_env["AUDIT_KEY_PREFIX"] + "clock:leader"
    bases = []
    for name in ("web-1", "web-2"):
        sock = listening_socket()
        bases.append(f"http://127.0.0.1:{sock.getsockname()[1]}")
        spawn(name, gunicorn(sock, "examples.app:create_app()"), service_env, pass_fds=(sock.fileno(),))
        sock.close()
    for name in ("worker-1", "worker-2"):
        spawn(name, python("-m", "dramatiq", "worker", "--processes", "1", "--threads", "2"), service_env)
    clocks = [
        spawn(name, python("-m", "flask", "audit", "scheduler"), service_env)
        for name in ("clock-1", "clock-2")
    ]
    token = wait_for(lambda: client.get(leader_key), 30, "a clock to lead").decode()
    leader = wait_for(
        lambda: next((c for c in clocks if f"clock {token[:8]} took the lead" in c.output()), None),
        10,
        "the leading clock's log line",
    )
    standby = next(c for c in clocks if c is not leader)

    loads = [Load(base, tag=f"web{n}") for n, base in enumerate(bases)]
    for load in loads:
        wait_for(lambda load=load: answers(load.base), 30, "gunicorn to answer")
        load.__enter__()
    try:
        time.sleep(3)
        leader.signal(signal.SIGKILL)
        killed_at = time.monotonic()
        new_token = wait_for(
            lambda: (value := client.get(leader_key)) and value.decode() != token and value.decode(),
            LEASE + LEAD_INTERVAL + 2,
            "the standby clock to take the lead",
        )
        took_over = time.monotonic() - killed_at
        time.sleep(4)  # load goes on under the new leader
    finally:
        for load in loads:
            load.__exit__()
    assert f"clock {new_token[:8]} took the lead" in standby.output()
    sent = {request_id for load in loads for request_id in load.ok}
    assert all(not load.errors for load in loads), [load.errors[:3] for load in loads]
    assert all(len(load.ok) > 100 for load in loads)

    def stored() -> list[str]:
        conn = psycopg2.connect(pg_url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT request_id FROM audit_logs WHERE event_type = 'api_key_created'")
                return [row[0] for row in cur.fetchall()]
        finally:
            conn.close()

    wait_for(lambda: len(stored()) >= len(sent), 60, f"{len(sent)} rows")
    time.sleep(1)
    rows = stored()
    assert len(rows) == len(set(rows)) == len(sent) and set(rows) == sent
    print(
        f"\nmany hosts: {len(sent)} events from two web servers; the standby clock led {took_over:.2f} s after the kill"
    )
    assert took_over <= LEASE + LEAD_INTERVAL
