"""Schema migrations on a database that release 0.1.0 created and filled (its DDL is kept under
tests/fixtures/release_0_1_0): PostgreSQL plain and partitioned, and SQLite."""

from __future__ import annotations

import sqlite3
import subprocess
import uuid
from pathlib import Path

import orjson
import psycopg2
import psycopg2.extras
import pytest

from flask_audit.errors import TransientStoreError
from flask_audit.events.event import AuditEvent, build_event, decode_entry
from flask_audit.storage import migrations
from flask_audit.storage.ddl import CRITICAL_INDEX
from tests.processes import python

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "release_0_1_0"
#: the columns of audit_logs in release 0.1.0
RELEASE_0_1_0_COLUMNS = (
    "event_id",
    "created_at",
    "event_type",
    "event_category",
    "user_id",
    "resource_type",
    "resource_id",
    "description",
    "metadata",
    "ip_address",
    "user_agent",
    "request_id",
)
ENTRIES = [line for line in (FIXTURES / "entries.jsonl").read_bytes().splitlines() if line]


def _sqlite_value(column: str, value: object) -> object:
    """A value as release 0.1.0's Peewee model wrote it to SQLite (UUIDs as 32 hex digits)."""
    if column == "event_id":
        return uuid.UUID(str(value)).hex
    if column == "created_at":
        return value.isoformat(sep=" ", timespec="microseconds")
    if column == "metadata":
        return orjson.dumps(value).decode()
    return value


def load_release_0_1_0(url: str, kind: str) -> None:
    """Create audit_logs with the 0.1.0 DDL and put that release's events in it."""
    rows = [AuditEvent.from_entry(raw).to_row() for raw in ENTRIES]
    columns = list(RELEASE_0_1_0_COLUMNS)
    if kind == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.executescript((FIXTURES / "sqlite.sql").read_text())
        conn.executemany(
            f"INSERT INTO audit_logs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [[_sqlite_value(c, r[c]) for c in columns] for r in rows],
        )
        conn.commit()
        conn.close()
        return
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS audit_logs, audit_schema_migrations CASCADE")
        cur.execute((FIXTURES / f"postgres_{kind}.sql").read_text())
        for r in rows:
            cur.execute(
                f"INSERT INTO audit_logs ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                [psycopg2.extras.Json(r[c]) if c == "metadata" else r[c] for c in columns],
            )
    conn.close()


@pytest.fixture(params=["plain", "partitioned", "sqlite"])
def old_database(request, pg_url, sqlite_url):
    kind = request.param
    url = sqlite_url if kind == "sqlite" else pg_url
    load_release_0_1_0(url, kind)
    return url, kind


def seal_leaves_compression(store) -> str:
    """How PostgreSQL compresses new seals' leaves: 'l' lz4, 'p' pglz, '' its default."""
    return store.database.execute_sql(
        "SELECT attcompression::text FROM pg_attribute"
        " WHERE attrelid = 'audit_seals'::regclass AND attname = 'leaves'"
    ).fetchone()[0]


def app_on(make_app, fake_redis, url, kind):
    """An app on the old database, configured as its table is (partitioned or not)."""
    return make_app(
        redis_client=fake_redis,
        AUDIT_DATABASE_URL=url,
        AUDIT_PARTITIONING="monthly" if kind == "partitioned" else None,
        create_schema=False,
    )


def test_migrate_lists_applies_once_and_keeps_every_row(make_app, fake_redis, old_database):
    _url, kind = old_database
    app, audit = app_on(make_app, fake_redis, *old_database)
    runner = app.test_cli_runner()
    before = runner.invoke(args=["audit", "migrate", "--status"]).output
    assert "0 applied, 7 pending" in before and "0002  pending" in before and "0007  pending" in before
    result = runner.invoke(args=["audit", "migrate"])
    assert result.exit_code == 0, result.output
    assert all(f"applied 000{n}" in result.output for n in (1, 2, 3, 4, 5, 6, 7))
    after = runner.invoke(args=["audit", "migrate", "--status"]).output
    assert "7 applied, 0 pending" in after
    assert "0 migration(s) applied" in runner.invoke(args=["audit", "migrate"]).output  # each once
    store = audit.runtime(app).store
    assert sorted(store.event_ids()) == sorted(AuditEvent.from_entry(raw).event_id for raw in ENTRIES)
    assert len(store.recent(10, category="critical")) == 4
    if kind != "sqlite":
        valid = store.database.execute_sql(
            "SELECT bool_and(i.indisvalid), count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname LIKE %s",
            (f"%{CRITICAL_INDEX.removeprefix('audit_logs_')}%",),
        ).fetchone()
        assert valid[0] is True and valid[1] >= (1 if kind == "plain" else 5)  # parent + each partition
        assert seal_leaves_compression(store) == "l"  # migration 6 (this server has lz4)
    else:
        names = [
            r[0] for r in store.database.execute_sql("SELECT name FROM sqlite_master WHERE type='index'")
        ]
        assert CRITICAL_INDEX in names


def table_indexes(store) -> dict[str, str]:
    """audit_logs's own indexes (a partitioned table's parent: not its partitions'), name ->
    definition, and on PostgreSQL whether each is valid (a partitioned index is valid once every
    partition's is attached)."""
    if not store.is_postgres:
        rows = store.database.execute_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_logs' AND sql IS NOT NULL"
        ).fetchall()
        return {name: sql.replace('"', "") for name, sql in rows}
    rows = store.database.execute_sql(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'audit_logs'::regclass"
    ).fetchall()
    return dict(rows)


def test_migrated_indexes_are_a_fresh_schemas(make_app, fake_redis, old_database, pg_url, sqlite_url):
    """Migration 7 leaves release 0.1.0's table with the indexes a new install gets: the user,
    resource and tenant ones partial, the full ones gone, every row still found by them."""
    url, kind = old_database
    app, audit = app_on(make_app, fake_redis, url, kind)
    assert app.test_cli_runner().invoke(args=["audit", "migrate"]).exit_code == 0
    store = audit.runtime(app).store
    migrated = table_indexes(store)
    for predicate in ("user_id IS NOT NULL", "resource_type IS NOT NULL", "tenant_id IS NOT NULL"):
        assert sum(predicate in definition for definition in migrated.values()) == 1, migrated
    assert not any("INVALID" in definition for definition in migrated.values()), migrated
    model = store.model
    with_user = model.select().where(model.user_id.is_null(False)).count()
    assert with_user > 0 and model.select().where(model.user_id == "user-1").count() >= 1
    if kind == "sqlite":
        fresh_url = sqlite_url.removesuffix(".db") + "-fresh.db"
    else:
        store.database.execute_sql("DROP TABLE audit_logs, audit_seals, audit_schema_migrations CASCADE")
        fresh_url = url
    fresh_app, fresh_audit = make_app(
        redis_client=fake_redis,
        AUDIT_DATABASE_URL=fresh_url,
        AUDIT_PARTITIONING="monthly" if kind == "partitioned" else None,
    )
    assert table_indexes(fresh_audit.runtime(fresh_app).store) == migrated


def test_a_batch_for_a_table_not_migrated_yet_waits_and_lands_after(make_app, fake_redis, old_database):
    """A worker of this release may drain before `flask audit migrate` has added the columns its
    rows have (outcome, tenant_id): the database is not ready, the batch is not poison. Filed as
    failed, every event of the batch would have left the queue for the failed list."""
    app, audit = app_on(make_app, fake_redis, *old_database)
    store = audit.runtime(app).store
    rows = [decode_entry(build_event("x", user_id=str(i), tenant_id="t").to_entry()) for i in range(3)]
    with pytest.raises(TransientStoreError):
        store.write_batch(rows)
    assert app.test_cli_runner().invoke(args=["audit", "migrate"]).exit_code == 0
    assert store.write_batch(rows)[0] == 3
    model = store.model
    assert model.select().where(model.tenant_id == "t").count() == 3


def test_init_db_migrates_an_existing_database(make_app, fake_redis, old_database):
    app, audit = app_on(make_app, fake_redis, *old_database)
    result = app.test_cli_runner().invoke(args=["audit", "init-db"])
    assert result.exit_code == 0 and "audit_logs migrated" in result.output, result.output
    assert migrations.status(audit.runtime(app).store).pending == []
    assert audit.runtime(app).store.count() == len(ENTRIES)


@pytest.mark.processes
def test_several_processes_may_migrate_at_once(service_env, pg_url):
    load_release_0_1_0(pg_url, "plain")
    env = dict(service_env)
    procs = [
        subprocess.Popen(
            python("-m", "flask", "audit", "migrate"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        outputs.append(out)
    conn = psycopg2.connect(pg_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT number, count(*) FROM audit_schema_migrations GROUP BY number ORDER BY number"
            )
            assert cur.fetchall() == [(n, 1) for n in range(1, len(migrations.MIGRATIONS) + 1)]
    finally:
        conn.close()
    assert sum("applied 0002" in out for out in outputs) == 1  # one did the work, the others waited


@pytest.mark.parametrize("server", ["without lz4", "before PostgreSQL 14"])
def test_a_server_without_lz4_keeps_its_default_compression(
    make_app, fake_redis, pg_url, monkeypatch, server
):
    """Migration 6 asks the server first: a PostgreSQL built without lz4 lists only pglz, one
    before 14 has no such setting at all; either way the schema is made and nothing is altered."""
    from flask_audit.storage import store as store_module

    answer = "SELECT false" if server == "without lz4" else "SELECT true WHERE false"
    monkeypatch.setattr(store_module, "LZ4_AVAILABLE_SQL", answer)
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=pg_url)
    store = audit.runtime(app).store
    assert seal_leaves_compression(store) == ""
    result = app.test_cli_runner().invoke(args=["audit", "migrate"])
    assert result.exit_code == 0 and "applied 0006" in result.output, result.output
    assert seal_leaves_compression(store) == ""
