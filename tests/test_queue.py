"""The capped list, on fakeredis and on the real Redis: cap, policy counters, claim, settle, reap."""

import json
import time

import pytest
from flask import Flask

from flask_audit.config import load_config
from flask_audit.queue.redis_queue import AuditQueue


@pytest.fixture
def make_queue(any_redis, tmp_path):
    client, prefix = any_redis

    def factory(**options):
        options.setdefault("AUDIT_KEY_PREFIX", prefix)
        app = Flask("q", instance_path=str(tmp_path))
        return AuditQueue(client, load_config(app, options))

    return factory


def totals(queue):
    return {k.decode(): int(v) for k, v in queue.client.hgetall(queue.totals_key).items()}


def test_push_respects_the_cap_and_counts(make_queue):
    queue = make_queue(AUDIT_MAX_QUEUE_LENGTH=3)
    assert queue.push([b"a", b"b"]) == 2
    assert queue.push([b"c", b"d", b"e"]) == 1
    assert queue.depth() == 3
    assert totals(queue) == {"enqueued": 3}  # "direct": the caller counts overflow after writing
    assert queue.claim(10).entries == [b"a", b"b", b"c"]  # the newest were taken back, in order


def test_an_entry_claimed_before_it_could_be_taken_back_stays_queued(make_queue):
    """A push past the cap takes its newest entries back in a second call; a drain may claim
    one in between. That one is on its way to the database: queued, not refused (else the
    caller would write it through a second time, or count it dropped though it is stored)."""
    queue = make_queue(AUDIT_MAX_QUEUE_LENGTH=2, AUDIT_OVERFLOW_POLICY="drop")
    queue.push([b"a"])
    take_back, claimed = queue._take_back, []

    def drain_first(keys, args):
        claimed.append(queue.claim(10))  # the whole list, the pushed entries included
        return take_back(keys=keys, args=args)

    queue._take_back = drain_first
    assert queue.push([b"b", b"c"]) == 2
    assert claimed[0].entries == [b"a", b"b", b"c"]
    assert queue.depth() == 0
    assert totals(queue) == {"enqueued": 3}  # nothing dropped: every entry is on its way


def test_a_push_past_the_cap_works_on_a_server_without_the_scripts(make_queue):
    """A new master after a failover has no scripts loaded: the push needs none, and taking
    entries back loads its own."""
    queue = make_queue(AUDIT_MAX_QUEUE_LENGTH=1, AUDIT_OVERFLOW_POLICY="drop")
    queue.client.script_flush()
    assert queue.push([b"a", b"b"]) == 1
    assert queue.depth() == 1
    assert totals(queue) == {"enqueued": 1, "dropped": 1}


def test_drop_policy_counts_dropped_in_the_same_step(make_queue):
    queue = make_queue(AUDIT_MAX_QUEUE_LENGTH=2, AUDIT_OVERFLOW_POLICY="drop")
    assert queue.push([b"a", b"b", b"c"]) == 2
    assert queue.push([b"d"]) == 0
    assert totals(queue) == {"enqueued": 2, "dropped": 2}


def test_claim_takes_the_oldest_first_and_keeps_order(make_queue):
    queue = make_queue()
    for i in range(5):
        queue.push([f"e{i}".encode()])
    batch = queue.claim(3)
    assert batch.entries == [b"e0", b"e1", b"e2"]
    assert queue.depth() == 2
    assert queue.inflight_count() == 3
    assert queue.claim(10).entries == [b"e3", b"e4"]
    assert queue.claim(10) is None


def test_priority_entries_are_claimed_before_the_queue(make_queue):
    queue = make_queue(AUDIT_MAX_QUEUE_LENGTH=1)
    queue.push([b"normal"])
    queue.push_priority(b"critical")  # never capped
    assert queue.depth() == 2
    assert queue.claim(5).entries == [b"critical", b"normal"]


def test_settle_files_failures_and_records_metrics(make_queue):
    queue = make_queue()
    queue.push([b"a", b"b", b"c"])
    batch = queue.claim(3)
    queue.settle(
        batch, inserted=2, batch_ms=12.5, failures=[json.dumps({"error": "bad"}).encode()], statements=1
    )
    assert queue.inflight_count() == 0
    assert queue.failed_length() == 1
    assert totals(queue) == {"enqueued": 3, "inserted": 2, "failed": 1, "batches": 1, "db_statements": 1}


def test_each_push_counts_in_the_metrics_bucket_of_its_time(make_queue, monkeypatch):
    """A push's drops count in the ten-second bucket of the moment it went past the cap: one in
    the next bucket counts there, not in the one before."""
    from types import SimpleNamespace

    import flask_audit.queue.redis_queue as redis_queue
    from flask_audit.monitoring.buckets import bucket_key

    queue = make_queue(AUDIT_MAX_QUEUE_LENGTH=1, AUDIT_OVERFLOW_POLICY="drop")
    moments = iter([1000.0, 1009.9, 1010.0])  # read only when a push goes past the cap
    monkeypatch.setattr(redis_queue, "time", SimpleNamespace(time=lambda: next(moments)))
    for entry in (b"kept", b"a", b"b", b"c"):  # the cap keeps the first; the bucket counts drops
        queue.push([entry])
    prefix = queue.config.key_prefix
    counted = [queue.client.hget(bucket_key(prefix, at), "dropped") for at in (1000, 1010)]
    assert counted == [b"2", b"1"]


def test_settle_counts_the_stored_events_by_outcome_in_the_same_step(make_queue):
    queue = make_queue()
    queue.push([b"a", b"b", b"c", b"d", b"e"])
    rejected = json.dumps({"error": "bad"}).encode()
    queue.settle(
        queue.claim(5), inserted=4, batch_ms=1.0, failures=[rejected], outcomes={"success": 3, "denied": 1}
    )
    counted = totals(queue)
    assert (counted["outcome_success"], counted["outcome_denied"]) == (3, 1)
    assert "outcome_failure" not in counted  # no field for an outcome no event had
    assert counted["failed"] == 1 and queue.client.lrange(queue.failed_key, 0, -1) == [rejected]


def test_requeue_returns_a_batch_ahead_of_newer_events_in_order(make_queue):
    queue = make_queue()
    queue.push([b"a", b"b", b"c"])
    batch = queue.claim(2)
    queue.push([b"d"])
    assert queue.requeue(batch) == 2
    assert queue.inflight_count() == 0
    assert queue.claim(10).entries == [b"a", b"b", b"c", b"d"]


def test_reaper_returns_only_batches_past_their_visibility_timeout(make_queue):
    queue = make_queue(AUDIT_VISIBILITY_TIMEOUT_SECONDS=30)
    queue.push([b"a", b"b", b"c"])
    stuck = queue.claim(2)
    assert queue.reap() == 0  # still within its 30 s
    assert queue.reap(now=time.time() + 31) == 2
    assert queue.claim(10).entries == [b"a", b"b", b"c"]
    queue.settle(stuck, inserted=0, batch_ms=1)  # a late ack of a reaped batch is harmless
    assert queue.depth() == 0


def test_large_batches_are_claimed_whole(make_queue):
    queue = make_queue(AUDIT_MAX_QUEUE_LENGTH=20000)
    entries = [f"{i}".encode() for i in range(12000)]
    for start in range(0, len(entries), 1000):
        queue.push(entries[start : start + 1000])
    batch = queue.claim(12000)
    assert batch.entries == entries
    assert queue.inflight_count() == 12000


def test_a_push_of_thousands_keeps_their_order_and_the_cap_inside_a_slice(make_queue):
    """The script pushes in slices of 1,000 (Lua's stack): the cap may fall inside one."""
    queue = make_queue(AUDIT_MAX_QUEUE_LENGTH=2345)
    entries = [f"e{i}".encode() for i in range(3000)]
    assert queue.push(entries) == 2345
    assert totals(queue) == {"enqueued": 2345}
    assert queue.claim(5000).entries == entries[:2345]


def test_every_claimed_batch_counts_as_in_flight_until_settled(make_queue):
    queue = make_queue()
    queue.push([f"e{i}".encode() for i in range(10)])
    batches = [queue.claim(3) for _ in range(3)]
    assert queue.inflight_count() == 9 and queue.depth() == 1
    queue.settle(batches[0], inserted=3, batch_ms=1.0)
    assert queue.inflight_count() == 6


def test_the_redis_keys_operators_look_for_have_their_documented_names(make_queue):
    queue = make_queue(AUDIT_KEY_PREFIX="app1:")
    assert (queue.queue_key, queue.priority_key, queue.inflight_key, queue.batch_prefix) == (
        "app1:queue",
        "app1:priority",
        "app1:inflight",
        "app1:batch:",
    )


def test_drops_count_in_the_minute_the_health_rules_read(make_queue):
    from flask_audit.monitoring.metrics import Metrics

    queue = make_queue(AUDIT_MAX_QUEUE_LENGTH=1, AUDIT_OVERFLOW_POLICY="drop")
    queue.push([b"a", b"b", b"c"])
    snapshot = Metrics(queue.client, queue.config).snapshot()
    assert snapshot.dropped_last_minute == 2


@pytest.mark.parametrize(("batch_ms", "bucket"), [(12.5, "le:0.025"), (30.0, "le:0.05"), (100.0, "le:0.1")])
def test_settle_counts_the_batch_in_its_duration_bucket(make_queue, batch_ms, bucket):
    queue = make_queue()
    queue.push([b"a"])
    queue.settle(queue.claim(1), inserted=1, batch_ms=batch_ms)
    histogram = {k.decode(): float(v) for k, v in queue.client.hgetall(queue.histogram_key).items()}
    assert histogram[bucket] == 1 and histogram["count"] == 1
    assert totals(queue).get("db_statements", 0) == 0  # no statement count given: none counted


def test_a_batch_just_over_a_bound_counts_in_the_next_bucket(make_queue):
    queue = make_queue()
    queue.push([b"a"])
    queue.settle(queue.claim(1), inserted=1, batch_ms=25.01)  # 0.02501 s: past le:0.025
    histogram = {k.decode(): float(v) for k, v in queue.client.hgetall(queue.histogram_key).items()}
    assert histogram.get("le:0.05") == 1 and "le:0.025" not in histogram
