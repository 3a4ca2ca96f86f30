"""Operator commands on the real PostgreSQL: failed list and requeue, purge, export."""

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from flask_audit.events.event import build_event
from flask_audit.pipeline.drain import Drainer


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


def test_purge_deletes_only_old_rows(pg_app):
    app, audit, runtime = pg_app
    old = datetime.now(timezone.utc) - timedelta(days=100)
    runtime.store.insert([build_event("old", created_at=old + timedelta(minutes=i)) for i in range(25)])
    runtime.store.insert([build_event("recent") for _ in range(5)])
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["audit", "purge", "--dry-run"])
    assert "25 row(s) older than 90 days" in dry.output and runtime.store.count() == 30
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


def test_csv_export_never_writes_a_formula(pg_app):
    app, audit, runtime = pg_app
    hostile = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tlead", "\rlead"]
    with app.app_context():
        for text in hostile:
            audit.log(
                "viewed", user_agent=text.strip("\t\r") if text[0] in "\t\r" else text, description=text
            )
    Drainer(runtime.queue, runtime.store).drain_all(100)
    out = app.test_cli_runner().invoke(args=["audit", "export", "--format", "csv"]).output
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sorted(r["description"] for r in rows) == sorted("'" + text for text in hostile)
    assert all(not r["user_agent"].startswith(("=", "+", "-", "@")) for r in rows)


@pytest.mark.processes
def test_export_to_a_terminal_shows_control_characters_instead_of_obeying_them(service_env, pg_url):
    """Rows an older release stored with escape codes reach a terminal only as visible text."""
    import os
    import pty
    import subprocess

    import psycopg2

    from tests.processes import python

    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO audit_logs (event_id, created_at, event_type, event_category, user_agent, description)"
            " VALUES (gen_random_uuid(), now(), 'x', 'info', %s, %s)",
            ("\x1b]0;owned\x07agent", "clear\x1b[2J\x9b31m"),
        )
    conn.close()
    for fmt in ("jsonl", "csv"):
        leader, follower = pty.openpty()
        try:
            proc = subprocess.run(
                python("-m", "flask", "audit", "export", "--format", fmt),
                env=service_env,
                stdout=follower,
                stderr=subprocess.PIPE,
                timeout=60,
            )
            os.close(follower)
            follower = -1
            chunks = []
            while True:
                try:
                    data = os.read(leader, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
        finally:
            if follower != -1:
                os.close(follower)
            os.close(leader)
        assert proc.returncode == 0, proc.stderr
        screen = b"".join(chunks).decode()
        assert "\x1b" not in screen and "\x9b" not in screen and "\x07" not in screen
        assert ("\\x1b" in screen or "\\u001b" in screen) and "owned" in screen


def test_purge_deletes_in_chunks_of_the_configured_size_with_a_progress_bar(make_app, pg_url, any_redis):
    client, prefix = any_redis
    app, audit = make_app(
        redis_client=client, AUDIT_KEY_PREFIX=prefix, AUDIT_DATABASE_URL=pg_url, AUDIT_PURGE_CHUNK=7
    )
    store = audit.runtime(app).store
    old = datetime.now(timezone.utc) - timedelta(days=100)
    store.insert([build_event("old", created_at=old + timedelta(minutes=i)) for i in range(25)])
    store.insert([build_event("recent") for _ in range(5)])
    store.database.execute_sql(
        """
        CREATE TABLE purge_statements (at timestamptz DEFAULT now());
        CREATE FUNCTION count_purge() RETURNS trigger AS $$
        BEGIN INSERT INTO purge_statements DEFAULT VALUES; RETURN NULL; END $$ LANGUAGE plpgsql;
        CREATE TRIGGER count_purge AFTER DELETE ON audit_logs FOR EACH STATEMENT EXECUTE FUNCTION count_purge();
        """
    )
    try:
        result = app.test_cli_runner().invoke(args=["audit", "purge", "--yes"])
        assert "deleted 25 row(s)" in result.output, result.output
        assert "purging" in result.stderr  # the progress bar goes to stderr
        (statements,) = store.database.execute_sql("SELECT count(*) FROM purge_statements").fetchone()
        assert statements == 4  # 7 + 7 + 7 + 4: chunks of AUDIT_PURGE_CHUNK, short locks
    finally:
        store.database.execute_sql(
            "DROP TRIGGER count_purge ON audit_logs; DROP FUNCTION count_purge(); DROP TABLE purge_statements"
        )


def test_purge_on_a_partitioned_table_drops_whole_months(make_app, pg_url, fake_redis):
    from flask_audit.storage.partitions import (
        ensure_partitions,
        existing_partitions,
        month_start,
        partition_name,
    )

    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=pg_url, AUDIT_PARTITIONING="monthly")
    store = audit.runtime(app).store
    old = datetime.now(timezone.utc) - timedelta(days=150)
    ensure_partitions(store, now=old, ahead=0)
    store.insert([build_event("old", created_at=old), build_event("recent")])
    result = app.test_cli_runner().invoke(args=["audit", "purge", "--yes"])
    gone = partition_name(month_start(old.year, old.month))
    assert "partitioned by month" in result.output and f"dropped partitions: {gone}" in result.output, (
        result.output
    )
    assert gone not in existing_partitions(store)
    assert [r.event_type for r in store.recent(10)] == ["recent"]


def test_the_jsonl_export_postgresql_writes_is_the_stored_events_value_for_value(pg_app, tmp_path):
    """The COPY path (PostgreSQL) and the row-by-row path (any database, and terminals) agree on
    every value, hostile text included, under the same filters."""
    from flask_audit.cli.operate import _write
    from flask_audit.storage.query import parse_filters, stream

    app, audit, runtime = pg_app
    whole_second = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    events = [
        build_event(
            "x",
            user_id="u1",
            description='quote " backslash \\ line\nbreak\ttab ünï \u2028 \U0001f600',
            metadata={"deep": {"list": [1, 2.5, None, True, "\\n"]}, "big": 2**63, "x": "\x01"},
            user_agent="=cmd|' /C calc'!A0",
            created_at=whole_second,  # isoformat() without microseconds
        ),
        build_event("y", user_id="u1", created_at=whole_second + timedelta(microseconds=1)),
        build_event("z", user_id="u2", ip_address="2001:db8::1", tenant_id="t", outcome="denied"),
    ]
    runtime.store.insert(events)
    out = tmp_path / "all.jsonl"
    result = app.test_cli_runner().invoke(args=["audit", "export", "--user-id", "u1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 2 row(s)" in result.output
    # lines end at \n only: str.splitlines would also cut at the U+2028 inside a value
    by_copy = [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n") if line]
    sink = io.StringIO()
    _write("jsonl", stream(runtime.store, parse_filters({"user_id": "u1"})), sink, lambda n: None)
    by_rows = [json.loads(line) for line in sink.getvalue().split("\n") if line]
    assert by_copy == by_rows and len(by_copy) == 2
    assert by_copy[0]["created_at"] == "2026-03-01T12:00:00+00:00"
    assert by_copy[1]["created_at"] == "2026-03-01T12:00:00.000001+00:00"
    to_stdout = app.test_cli_runner().invoke(args=["audit", "export"])
    lines = [json.loads(line) for line in to_stdout.output.split("\n") if line]
    assert [row["event_type"] for row in lines] == ["x", "y", "z"]


def test_a_large_jsonl_export_made_in_parallel_chunks_keeps_every_row_once_in_order(pg_app, monkeypatch):
    """Chunks cut by created_at, made side by side, written in order: ties at a cut included."""
    from flask_audit.cli.operate import _write
    from flask_audit.storage import pgexport
    from flask_audit.storage.query import parse_filters, stream

    app, audit, runtime = pg_app
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    # 60 rows on 20 distinct times: every time is shared by three rows, so cuts fall inside ties
    runtime.store.insert(
        [
            build_event("x", user_id=f"u{i % 2}", created_at=start + timedelta(seconds=i // 3))
            for i in range(60)
        ]
    )
    monkeypatch.setattr(pgexport, "CHUNK_ROWS", 7)
    filters = parse_filters({"user_id": "u1"})
    assert len(list(pgexport.cuts(runtime.store, filters))) >= 3  # really cut into chunks
    sink = io.BytesIO()
    assert pgexport.copy_jsonl(runtime.store, filters, sink) == 30
    by_copy = [json.loads(line) for line in sink.getvalue().decode().split("\n") if line]
    rows = io.StringIO()
    _write("jsonl", stream(runtime.store, filters), rows, lambda n: None)
    assert by_copy == [json.loads(line) for line in rows.getvalue().split("\n") if line]
    assert [r["id"] for r in by_copy] == sorted(r["id"] for r in by_copy)  # created_at, then id
