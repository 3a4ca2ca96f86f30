"""The clock sizes drains by the last minute's traffic as well as by the queue's depth: the real
`dramatiq` worker and `flask audit scheduler` on the real Redis and PostgreSQL, read back through
`flask audit status` and the drain's own counters."""

from __future__ import annotations

import subprocess

from tests.conftest import REDIS_URL
from tests.processes import python, wait_for


def status_of(env: dict[str, str]) -> str:
    done = subprocess.run(
        python("-m", "flask", "audit", "status"), env=env, capture_output=True, text=True, timeout=60
    )
    return done.stdout


def test_a_busy_minute_drains_a_short_queue_in_batches_of_300(
    service_env, spawn, make_app, key_prefix, pg_url
):
    """With the depth's tiers held at 100 (AUDIT_BATCH_TIERS=0:100), a size of 300 can only come
    from the traffic: 1,200 events stored in the last minute are the original design's 1K-10K a
    minute. 900 events then queued at once drain in three batches, not nine."""
    env = dict(service_env, AUDIT_BATCH_TIERS="0:100")
    app, audit = make_app(
        AUDIT_REDIS_URL=REDIS_URL,
        AUDIT_KEY_PREFIX=key_prefix,
        AUDIT_DATABASE_URL=pg_url,
        AUDIT_BATCH_TIERS="0:100",
        AUDIT_BUFFERED=True,
        AUDIT_BUFFER_FLUSH_MS=3_600_000,
        AUDIT_BUFFER_MAX_EVENTS=1_000_000,
    )
    runtime = audit.runtime(app)
    with app.app_context():
        for i in range(1200):
            audit.log("api_key_created", user_id=i)
    assert runtime.buffer.flush() == 1200
    spawn("worker", python("-m", "dramatiq", "worker", "--processes", "1", "--threads", "2"), env)
    spawn("clock", python("-m", "flask", "audit", "scheduler"), env)
    wait_for(lambda: runtime.store.count() == 1200, 60, "the first 1,200 events stored")
    # the first ticks saw a deep queue and no traffic yet: 100; the ones after it, the traffic
    wait_for(lambda: "batch size  300" in status_of(env), 30, "the clock to pick 300 from the traffic")
    assert "last minute 1200 inserted" in status_of(env)
    batches_before = runtime.metrics.snapshot().totals["batches"]
    assert batches_before >= 12  # the first 1,200 went in batches of 100

    with app.app_context():
        for i in range(900):
            audit.log("api_key_created", user_id=i)
    assert runtime.buffer.flush() == 900  # one push: the clock sees all 900 at once
    wait_for(lambda: runtime.store.count() == 2100, 60, "the next 900 events stored")
    batches = runtime.metrics.snapshot().totals["batches"] - batches_before
    assert 3 <= batches <= 4, batches  # 300 a batch (a fourth may claim nothing); nine at 100
