"""Draining: batches land in order, poison is isolated, a database outage keeps the events."""

import json

import pytest

from flask_audit.errors import TransientStoreError
from flask_audit.events.event import build_event, decode_entry
from flask_audit.pipeline.drain import Drainer
from flask_audit.storage.store import AuditStore


@pytest.fixture
def pipeline(make_app, any_redis, any_db_url):
    client, prefix = any_redis
    app, audit = make_app(redis_client=client, AUDIT_KEY_PREFIX=prefix, AUDIT_DATABASE_URL=any_db_url)
    runtime = audit.runtime(app)
    return app, audit, runtime, Drainer(runtime.queue, runtime.store)


def test_events_land_once_in_order(pipeline):
    app, audit, runtime, drainer = pipeline
    with app.app_context():
        ids = [audit.log("api_key_created", user_id=i) for i in range(250)]
    result = drainer.drain_all(100)
    assert (result.claimed, result.inserted, result.failed) == (250, 250, 0)
    rows = list(runtime.store.model.select().order_by(runtime.store.model.id))
    assert [str(r.event_id) for r in rows] == ids
    assert runtime.queue.depth() == 0 and runtime.queue.inflight_count() == 0


def test_redelivered_batch_creates_no_duplicates(pipeline):
    app, audit, runtime, drainer = pipeline
    with app.app_context():
        for i in range(10):
            audit.log("x", user_id=i)
    batch = runtime.queue.claim(10)
    runtime.store.insert([__import__("flask_audit").AuditEvent.from_entry(e) for e in batch.entries])
    runtime.queue.requeue(batch)  # as if the worker died before acknowledging
    result = drainer.drain_all(100)
    assert result.claimed == 10 and result.inserted == 0
    assert runtime.store.count() == 10


def test_poison_is_isolated_and_the_rest_lands(pipeline):
    app, audit, runtime, drainer = pipeline
    good = [build_event("ok", user_id=i) for i in range(9)]
    rejected = build_event("ok")
    row = rejected.to_row()
    # An entry that passes decoding but that the database refuses (NOT NULL event_type).
    poison = json.dumps({**row, "created_at": row["created_at"].isoformat(), "v": 1, "event_type": None})
    entries = (
        [e.to_entry() for e in good[:4]] + [b"{not json", poison.encode()] + [e.to_entry() for e in good[4:]]
    )
    runtime.queue.push(entries)
    result = drainer.drain_once(100)
    assert (result.claimed, result.inserted, result.failed) == (11, 9, 2)
    assert runtime.store.count() == 9
    failed = [json.loads(raw) for raw in runtime.queue.client.lrange(runtime.queue.failed_key, 0, -1)]
    errors = sorted(f["error"] for f in failed)
    assert errors[0].startswith("entry: is not valid JSON")
    assert any("event_type" in f["error"] for f in failed)
    assert all(f["failed_at"].endswith("+00:00") and f["attempts"] >= 1 and f["entry"] for f in failed)
    assert all(len(f["id"]) == 12 and int(f["id"], 16) >= 0 for f in failed)  # what `failed requeue` takes
    assert runtime.queue.inflight_count() == 0


def test_an_entry_that_is_not_even_utf8_is_kept_readable_in_the_failed_list(pipeline):
    app, audit, runtime, drainer = pipeline
    runtime.queue.push([b"\xff\xfe{broken", build_event("ok").to_entry()])
    result = drainer.drain_once(10)
    assert (result.inserted, result.failed) == (1, 1)
    (record,) = [json.loads(raw) for raw in runtime.queue.client.lrange(runtime.queue.failed_key, 0, -1)]
    assert record["entry"] == "\ufffd\ufffd{broken"


def test_database_outage_keeps_events_in_redis(make_app, any_redis, tmp_path):
    client, prefix = any_redis
    app, audit = make_app(
        redis_client=client,
        AUDIT_KEY_PREFIX=prefix,
        AUDIT_DATABASE_URL="postgresql://postgres@127.0.0.1:1/unreachable",
        create_schema=False,
    )
    runtime = audit.runtime(app)
    with app.app_context():
        ids = [audit.log("x", user_id=i) for i in range(5)]
    drainer = Drainer(runtime.queue, runtime.store)
    with pytest.raises(TransientStoreError):
        drainer.drain_once(100)
    assert runtime.queue.depth() == 5 and runtime.queue.inflight_count() == 0
    assert runtime.queue.failed_length() == 0
    # The database comes back: everything lands, nothing failed.
    healthy = AuditStore(f"sqlite:///{tmp_path}/back.db")
    healthy.create_schema()
    assert Drainer(runtime.queue, healthy).drain_all(100).inserted == 5
    assert sorted(healthy.event_ids()) == sorted(ids)


def test_drain_all_adds_up_every_batch(pipeline):
    app, audit, runtime, drainer = pipeline
    good = [build_event("ok", user_id=i) for i in range(6)]
    entries = [e.to_entry() for e in good[:3]] + [b"{bad"] + [e.to_entry() for e in good[3:]] + [b"{bad"]
    runtime.queue.push(entries)
    total = drainer.drain_all(4)  # two batches, one poison entry in each
    assert (total.claimed, total.inserted, total.failed) == (8, 6, 2)


def test_a_poison_entry_is_isolated_by_halving_and_the_work_is_counted(make_app, fake_redis, pg_url):
    """Eight entries, the last refused by PostgreSQL (JSONB takes no NUL character): 8 -> 4 + 4
    -> 2 + 2 -> 1 + 1: the poison is found at the fourth attempt, and three COPYs commit."""
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=pg_url)
    runtime = audit.runtime(app)
    drainer = Drainer(runtime.queue, runtime.store)
    good = [build_event("ok", user_id=i) for i in range(8)]
    data = {**decode_entry(good[7].to_entry()), "v": 1}  # a JSON entry
    data["metadata"] = {"k": "\u0000"}
    runtime.queue.push([e.to_entry() for e in good[:7]] + [json.dumps(data).encode(), good[0].to_entry()])
    result = drainer.drain_once(8)
    assert (result.claimed, result.inserted, result.failed, result.remaining) == (8, 7, 1, 1)
    (record,) = [json.loads(raw) for raw in runtime.queue.client.lrange(runtime.queue.failed_key, 0, -1)]
    assert record["attempts"] == 4 and record["event_id"] == good[7].event_id
    snapshot = runtime.metrics.snapshot()
    assert snapshot.totals["db_statements"] == 3  # the COPYs that committed: 4, 2 and 1 rows
    assert 0 < snapshot.avg_batch_time_ms < 10_000
    assert 0 < snapshot.batch_seconds["sum"] < 10 and snapshot.batch_seconds["count"] == 1


def test_a_poison_entry_in_the_first_half_is_found_too_and_counted_out(make_app, fake_redis, pg_url):
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=pg_url)
    runtime = audit.runtime(app)
    good = [build_event("ok", user_id=i) for i in range(4)]
    data = {**decode_entry(good[0].to_entry()), "v": 1}  # a JSON entry
    data["metadata"] = {"k": "\u0000"}
    runtime.queue.push([json.dumps(data).encode()] + [e.to_entry() for e in good[1:]])
    result = Drainer(runtime.queue, runtime.store).drain_once(4)
    assert (result.inserted, result.failed) == (3, 1)
    (record,) = [json.loads(raw) for raw in runtime.queue.client.lrange(runtime.queue.failed_key, 0, -1)]
    assert record["attempts"] == 3 and record["event_id"] == good[0].event_id  # 4 -> 2 -> 1
    totals = runtime.metrics.snapshot().totals
    assert totals["outcome_success"] == 3  # the refused event is not counted


def test_a_batch_of_only_undecodable_entries_inserts_nothing(pipeline):
    app, audit, runtime, drainer = pipeline
    runtime.queue.push([b"{bad", b"[1]"])
    result = drainer.drain_once(10)
    assert (result.claimed, result.inserted, result.failed) == (2, 0, 2)
    records = [json.loads(raw) for raw in runtime.queue.client.lrange(runtime.queue.failed_key, 0, -1)]
    assert [r["attempts"] for r in records] == [1, 1]  # refused before any insert
