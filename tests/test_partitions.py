"""Monthly partitioning on the real PostgreSQL: months ahead, idempotent inserts, retention by
dropping partitions, rows rescued from the default partition."""

from datetime import datetime, timedelta, timezone

import pytest

from flask_audit import AuditConfigError
from flask_audit.events.event import build_event
from flask_audit.pipeline.drain import Drainer
from flask_audit.storage.partitions import create_partitioned_schema, ensure_partitions, existing_partitions
from flask_audit.storage.retention import expire
from flask_audit.storage.store import AuditStore

NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)


@pytest.fixture
def store(pg_url):
    store = AuditStore(pg_url, partitioned=True)
    create_partitioned_schema(store, now=NOW)
    yield store
    store.close()


def test_init_creates_this_month_and_two_ahead(store):
    assert sorted(existing_partitions(store)) == [
        "audit_logs_p202611",
        "audit_logs_p202612",
        "audit_logs_p202701",
    ]
    create_partitioned_schema(store, now=NOW)  # safe to rerun
    assert len(existing_partitions(store)) == 3


def test_inserts_route_by_month_and_stay_idempotent(store):
    events = [build_event("x", created_at=NOW + timedelta(days=20 * i)) for i in range(4)] + [
        build_event("ancient", created_at=datetime(2020, 1, 1, tzinfo=timezone.utc))
    ]
    assert store.insert(events) == 5
    assert store.insert(events) == 0
    where = dict(
        store.database.execute_sql(
            "SELECT tableoid::regclass::text, count(*) FROM audit_logs GROUP BY 1"
        ).fetchall()
    )
    assert where == {
        "audit_logs_p202611": 1,
        "audit_logs_p202612": 1,
        "audit_logs_p202701": 2,
        "audit_logs_default": 1,
    }


def test_retention_drops_whole_months(store):
    old = datetime(2026, 7, 10, tzinfo=timezone.utc)
    ensure_partitions(store, now=old, ahead=0)  # July exists from an earlier run
    store.insert(
        [
            build_event("july", created_at=old),
            build_event("nov", created_at=NOW),
            build_event("older", created_at=datetime(2025, 1, 1, tzinfo=timezone.utc)),
        ]
    )
    result = expire(store, NOW - timedelta(days=90))  # cutoff 2026-08-29: July ended before it
    assert result.partitions_dropped == ["audit_logs_p202607"]
    assert result.rows_deleted == 1  # the 2025 row in the default partition
    assert [r.event_type for r in store.recent()] == ["nov"]


def test_rows_in_the_default_partition_move_when_their_month_is_created(store):
    march = datetime(2027, 3, 5, tzinfo=timezone.utc)
    event = build_event("early", created_at=march)
    store.insert([event])
    assert ensure_partitions(store, now=march, ahead=0) == ["audit_logs_p202703"]
    table = store.database.execute_sql("SELECT tableoid::regclass::text FROM audit_logs").fetchone()[0]
    assert table == "audit_logs_p202703"
    assert store.insert([event]) == 0


def test_the_pipeline_drains_into_partitions(make_app, fake_redis, pg_url):
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=pg_url, AUDIT_PARTITIONING="monthly")
    runtime = audit.runtime(app)
    with app.app_context():
        ids = [audit.log("x") for _ in range(20)]
    Drainer(runtime.queue, runtime.store).drain_all(7)
    assert sorted(runtime.store.event_ids()) == sorted(ids)


def test_partitioning_needs_postgres(make_app):
    with pytest.raises(AuditConfigError, match="PostgreSQL"):
        make_app(AUDIT_PARTITIONING="monthly")


def test_refuses_to_partition_over_a_plain_table(pg_url):
    AuditStore(pg_url).create_schema()
    with pytest.raises(RuntimeError, match="not partitioned"):
        create_partitioned_schema(AuditStore(pg_url, partitioned=True))
