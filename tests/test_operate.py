"""Operator commands on the real PostgreSQL: failed list and requeue, purge, export."""

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from flask_audit.drain import Drainer
from flask_audit.event import build_event


@pytest.fixture
def pg_app(make_app, pg_url, any_redis):
    client, prefix = any_redis
    app, audit = make_app(redis_client=client, AUDIT_KEY_PREFIX=prefix, AUDIT_DATABASE_URL=pg_url)
    return app, audit, audit.runtime(app)


def test_find_why_events_failed_fix_and_replay(pg_app, pg_url):
    app, audit, runtime = pg_app
    runtime.store.database.execute_sql(
        "ALTER TABLE audit_logs ADD CONSTRAINT short_description CHECK (length(description) < 20)"
    )
    with app.app_context():
        ids = [audit.log("x", description="fine") for _ in range(3)]
        bad = audit.log("x", description="far too long for the constraint")
    Drainer(runtime.queue, runtime.store).drain_all(100)
    runner = app.test_cli_runner()
    listing = runner.invoke(args=["audit", "failed", "list"]).output
    assert "short_description" in listing and "attempts=" in listing and "1 failed event(s)" in listing
    (record,) = [
        json.loads(line)
        for line in runner.invoke(args=["audit", "failed", "list", "--json"]).output.splitlines()
    ]
    assert record["event_id"] == bad and record["failed_at"]
    # Fix the cause, requeue, drain: it lands, once.
    runtime.store.database.execute_sql("ALTER TABLE audit_logs DROP CONSTRAINT short_description")
    assert "requeued 1 event(s)" in runner.invoke(args=["audit", "failed", "requeue", record["id"]]).output
    Drainer(runtime.queue, runtime.store).drain_all(100)
    assert sorted(runtime.store.event_ids()) == sorted([*ids, bad])
    assert runtime.queue.failed_length() == 0
    assert runner.invoke(args=["audit", "failed", "requeue"]).exit_code != 0  # says what to pass


def test_failed_requeue_all_and_purge(pg_app):
    app, audit, runtime = pg_app
    runtime.queue.push([b"garbage-1", b"garbage-2"])
    Drainer(runtime.queue, runtime.store).drain_all(10)
    runner = app.test_cli_runner()
    assert "requeued 2" in runner.invoke(args=["audit", "failed", "requeue", "--all"]).output
    assert runtime.queue.depth() == 2 and runtime.queue.failed_length() == 0
    Drainer(runtime.queue, runtime.store).drain_all(10)
    assert "purged 2" in runner.invoke(args=["audit", "failed", "purge", "--yes"]).output
    assert runtime.queue.failed_length() == 0


def test_purge_deletes_only_old_rows_in_chunks(pg_app):
    app, audit, runtime = pg_app
    old = datetime.now(timezone.utc) - timedelta(days=100)
    runtime.store.insert([build_event("old", created_at=old + timedelta(minutes=i)) for i in range(25)])
    runtime.store.insert([build_event("recent") for _ in range(5)])
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["audit", "purge", "--dry-run"])
    assert "25 row(s) older than 90 days" in dry.output and runtime.store.count() == 30
    app.config["AUDIT_PURGE_CHUNK"] = 7
    result = runner.invoke(args=["audit", "purge", "--yes"])
    assert "deleted 25 row(s)" in result.output, result.output
    assert [r.event_type for r in runtime.store.recent(50)] == ["recent"] * 5
    assert (
        "0 row(s) older than 10 days" in runner.invoke(args=["audit", "purge", "--older-than", "10"]).output
    )


def test_export_a_month_as_jsonl_and_csv(pg_app, tmp_path):
    app, audit, runtime = pg_app
    march = datetime(2026, 3, 1, tzinfo=timezone.utc)
    events = [
        build_event(
            "api_key_created",
            user_id=f"u{i % 3}",
            metadata={"i": i},
            created_at=march + timedelta(hours=i * 7),
        )
        for i in range(150)
    ]  # 150 * 7 h: March and into April
    runtime.store.insert(list(reversed(events)))
    in_march = [e for e in events if e.created_at < datetime(2026, 4, 1, tzinfo=timezone.utc)]
    runner = app.test_cli_runner()
    out = tmp_path / "march.jsonl"
    result = runner.invoke(
        args=["audit", "export", "--since", "2026-03-01", "--until", "2026-04-01", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["event_id"] for r in rows] == [e.event_id for e in in_march]  # created_at order
    assert rows[0]["metadata"] == {"i": 0}
    csv_text = runner.invoke(
        args=["audit", "export", "--format", "csv", "--user-id", "u1", "--until", "2026-03-05"]
    ).output
    parsed = list(csv.DictReader(io.StringIO(csv_text)))
    assert parsed and all(r["user_id"] == "u1" for r in parsed)
    assert json.loads(parsed[0]["metadata"]) == {"i": 1}
    bad = runner.invoke(args=["audit", "export", "--since", "last tuesday"])
    assert bad.exit_code != 0 and "--since" in bad.output
