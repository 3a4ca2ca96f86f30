"""The audit_logs table on SQLite and on the real PostgreSQL."""

from datetime import datetime, timedelta, timezone

import psycopg2
import pytest

from flask_audit.errors import RejectedError, TransientStoreError
from flask_audit.events import schema
from flask_audit.events.event import build_event
from flask_audit.storage.store import AuditStore


@pytest.fixture
def store(any_db_url):
    store = AuditStore(any_db_url)
    store.create_schema()
    yield store
    store.close()


def test_schema_is_safe_to_create_twice(store):
    store.create_schema()
    assert store.count() == 0


def test_insert_is_idempotent_on_event_id(store):
    events = [build_event("api_key_created", user_id=i) for i in range(5)]
    assert store.insert(events) == 5
    assert store.insert(events[2:] + [build_event("api_key_deleted")]) == 1
    assert store.count() == 6
    stored = store.event_ids()
    assert len(stored) == len(set(stored)) == 6
    assert {e.event_id for e in events} <= set(stored)


def test_values_come_back_as_written(store):
    event = build_event(
        "permanent_ban_applied",
        event_category="critical",
        user_id="u9",
        resource_type="account",
        metadata={"violation_count": 3, "ban_level": "PERMANENT", "nested": {"list": [1, "two"]}},
        ip_address="10.1.2.3",
        user_agent="ua",
        request_id="rid",
        created_at=datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc),
    )
    store.insert([event])
    row = store.recent(1)[0]
    assert str(row.event_id) == event.event_id
    assert row.created_at == event.created_at
    assert row.metadata == event.metadata
    assert (row.user_id, row.ip_address, row.request_id, row.event_category) == (
        "u9",
        "10.1.2.3",
        "rid",
        "critical",
    )


def test_purge_removes_only_rows_past_retention(store):
    old = datetime.now(timezone.utc) - timedelta(days=91)
    store.insert([build_event("old", created_at=old + timedelta(seconds=i)) for i in range(7)])
    store.insert([build_event("new")])
    assert store.purge_before(datetime.now(timezone.utc) - timedelta(days=90), chunk=3) == 7
    assert [row.event_type for row in store.recent()] == ["new"]


def test_a_row_created_exactly_at_the_cutoff_is_kept_and_not_counted(store):
    cutoff = datetime(2026, 1, 1, tzinfo=timezone.utc)
    store.insert(
        [
            build_event("before", created_at=cutoff - timedelta(microseconds=1)),
            build_event("at", created_at=cutoff),
        ]
    )
    assert store.count_older_than(cutoff) == 1
    assert store.purge_before(cutoff, chunk=10) == 1
    assert [row.event_type for row in store.recent()] == ["at"]


def test_postgres_schema_uses_native_types_and_indexes(pg_url):
    store = AuditStore(pg_url)
    store.create_schema()
    conn = psycopg2.connect(pg_url)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'audit_logs'"
        )
        types = dict(cur.fetchall())
        cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_logs'")
        indexes = " ".join(row[0] for row in cur.fetchall())
    conn.close()
    store.close()
    assert types["metadata"] == "jsonb"
    assert types["created_at"] == "timestamp with time zone"
    assert types["event_id"] == "uuid"
    assert "UNIQUE INDEX" in indexes and "(event_id)" in indexes
    assert "(user_id, created_at) WHERE (user_id IS NOT NULL)" in indexes
    assert "(event_type, created_at)" in indexes
    assert "(resource_type, resource_id) WHERE (resource_type IS NOT NULL)" in indexes
    assert "(tenant_id, created_at) WHERE (tenant_id IS NOT NULL)" in indexes
    # one index per declared one (and the primary key, event_id's and the critical rows')
    assert indexes.count("CREATE ") == len(schema.INDEXES) + 3


def test_unreachable_database_is_transient(tmp_path):
    store = AuditStore("postgresql://postgres@127.0.0.1:1/nothing")
    with pytest.raises(TransientStoreError):
        store.insert([build_event("x")])


def test_missing_table_is_transient_not_poison(pg_url):
    store = AuditStore(pg_url)  # no create_schema
    with pytest.raises(TransientStoreError):
        store.insert([build_event("x")])
    store.close()


def test_rejected_rows_are_not_transient(store):
    event = build_event("x")
    bad = event.__class__(**{**event.to_row(), "event_type": None})  # bypasses validation
    with pytest.raises(RejectedError):
        store.insert([bad])
    assert store.count() == 0


def test_awkward_text_survives_the_copy_format(store):
    text = "tab\there, newline\nthere, backslash \\ and \\N, carriage\rreturn, ünïcødé"
    event = build_event("x", description=text, user_agent=text, metadata={"k\tey": text, "n": None})
    store.insert([event])
    row = store.recent(1)[0]
    assert row.description == text  # tab, newline and carriage return are kept in a description
    assert row.user_agent == text.replace("\t", "\ufffd").replace("\n", "\ufffd").replace("\r", "\ufffd")
    assert row.metadata == {
        "k\ufffdey": text,  # a key is one line: its tab was replaced, and that is recorded
        "n": None,
        "_sanitized": ["metadata", "user_agent"],
    }


def test_an_empty_string_and_null_stay_apart_in_a_batch(store):
    """COPY writes NULL as \\N and an empty string as nothing; rows of both kinds, and one that
    needs escapes, in one batch."""
    events = [
        build_event("x", description="", user_id=None, resource_id="r"),
        build_event("x", description=None, user_id="", resource_id="a\tb\\N"),
        build_event("x", description="\\N", user_id="u", resource_id=None),
    ]
    store.insert(events)
    model = store.model
    rows = list(model.select().order_by(model.id))
    assert [(r.description, r.user_id, r.resource_id) for r in rows] == [
        ("", None, "r"),
        (None, "", "a\ufffdb\\N"),
        ("\\N", "u", None),
    ]


def test_a_redelivered_batch_mixed_with_new_events(store):
    first = [build_event("a") for _ in range(3)]
    store.insert(first)
    again = [first[1], build_event("b"), first[2], build_event("c")]
    rows, statements = store.write_batch([e.to_row() for e in again])
    assert rows == 2 and store.count() == 5
    assert statements == (2 if store.is_postgres else 1)  # COPY refused, then staging + INSERT


def test_times_read_back_in_utc_whatever_the_sessions_time_zone(pg_url):
    """A connection whose session is in another zone gets the same instant back, in UTC."""
    AuditStore(pg_url).create_schema()
    store = AuditStore(pg_url + "?options=-c%20TimeZone%3DAsia%2FKolkata")
    at = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
    store.insert([build_event("x", created_at=at)])
    (row,) = store.recent(1)
    assert row.created_at == at and row.created_at.utcoffset() == timedelta(0)
    with store.database.cursor() as cur:
        cur.execute("SHOW TimeZone")
        assert cur.fetchone()[0] == "Asia/Kolkata"  # the session really was elsewhere
    store.close()


def test_sqlite_stores_sortable_utc_text_and_null_metadata_as_null(sqlite_url):
    """On SQLite a time is text: one format (space, microseconds, +00:00), so that text order is
    time order; an event without metadata stores NULL, not the JSON text 'null'."""
    store = AuditStore(sqlite_url)
    store.create_schema()
    whole_second = datetime(2026, 1, 1, 5, 0, 0, tzinfo=timezone(timedelta(hours=5)))
    store.insert([build_event("x", created_at=whole_second)])
    assert store.write_batch([]) == (0, 0)
    text, metadata = store.database.execute_sql("SELECT created_at, metadata FROM audit_logs").fetchone()
    assert (text, metadata) == ("2026-01-01 00:00:00.000000+00:00", None)
    store.close()
    store.close()  # closing twice is harmless


def test_a_sqlite_store_makes_its_folder_and_opens_in_wal_mode(tmp_path):
    store = AuditStore(f"sqlite:///{tmp_path}/nested/dir/audit.db")
    assert (tmp_path / "nested" / "dir").is_dir() and not store.is_postgres
    assert store.database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 5000
    store.create_schema()
    kinds = {row[1]: row[2] for row in store.database.execute_sql("PRAGMA table_info(audit_logs)").fetchall()}
    assert (kinds["created_at"], kinds["metadata"]) == ("VARCHAR(40)", "TEXT")
    store.close()


def test_both_postgresql_schemes_open_postgresql(pg_url):
    for url in (pg_url, pg_url.replace("postgresql://", "postgres://", 1)):
        store = AuditStore(url)
        assert store.is_postgres
        store.create_schema()
        kinds = dict(
            store.database.execute_sql(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'audit_logs'"
            ).fetchall()
        )
        assert (kinds["created_at"], kinds["metadata"]) == ("timestamp with time zone", "jsonb")
        store.close()


def test_database_errors_become_the_packages_errors_and_others_pass_through(store):
    # a missing table: the database is not ready yet
    with pytest.raises(TransientStoreError), store.translate():
        store.database.execute_sql("SELECT * FROM no_such_table_at_all_here")
    # a row the database refuses: the data, not the database
    with pytest.raises(RejectedError), store.translate(), store.database.atomic():
        store.database.execute_sql("INSERT INTO audit_logs (event_type) VALUES ('x')")
    with pytest.raises(KeyError), store.translate():  # not a database error: untouched
        raise KeyError("x")
    with store.translate():
        pass  # no error: nothing raised


def test_translate_keeps_the_packages_own_errors_and_words_the_ones_it_makes(store):
    from flask_audit.errors import AuditValidationError

    with pytest.raises(AuditValidationError) as kept, store.translate():
        raise AuditValidationError("field", "rule")  # already the package's: not re-wrapped
    assert str(kept.value) == "field: rule"
    with pytest.raises(TransientStoreError) as same, store.translate():
        raise TransientStoreError("as it was")
    assert str(same.value) == "as it was"
    with pytest.raises(RejectedError) as refused, store.translate():
        raise ValueError("  a value the driver cannot send  ")
    assert str(refused.value) == "a value the driver cannot send"
    with pytest.raises(TransientStoreError) as down, store.translate():
        store.database.execute_sql("SELECT * FROM no_such_table_at_all_here")
    assert str(down.value).startswith("database unavailable: ") and "no_such_table_at_all_here" in str(
        down.value
    )


def test_a_timestamp_written_without_an_offset_by_another_tool_reads_back_as_utc(sqlite_url):
    from datetime import datetime, timezone

    store = AuditStore(sqlite_url)
    store.create_schema()
    store.database.execute_sql(
        "INSERT INTO audit_logs (event_id, created_at, event_type, event_category, outcome)"
        " VALUES ('0190f5c2-0000-7000-8000-000000000009', '2026-03-01 12:00:00', 'x', 'info', 'success')"
    )
    (row,) = list(store.model.select())
    assert row.created_at == datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    assert row.created_at.tzinfo is not None
    store.close()
    assert store.database.is_closed()


def test_both_postgresql_schemes_would_create_native_column_types():
    for scheme in ("postgres", "postgresql"):
        store = AuditStore(f"{scheme}://nobody@127.0.0.1:1/none")  # not connected until used
        assert store.is_postgres
        create = store.model._schema._create_table(safe=True)  # the table it would create
        ddl = store.database.get_sql_context().sql(create).query()[0]
        assert '"created_at" TIMESTAMPTZ' in ddl and '"metadata" JSONB' in ddl


def test_times_are_stored_and_read_in_utc_whatever_the_servers_zone(sqlite_url, monkeypatch):
    import time as time_module
    from datetime import datetime, timedelta, timezone

    from flask_audit.events.event import build_event

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time_module.tzset()
    try:
        store = AuditStore(sqlite_url)
        store.create_schema()
        tokyo = timezone(timedelta(hours=9))
        store.insert([build_event("x", created_at=datetime(2026, 3, 1, 21, 0, tzinfo=tokyo))])
        (raw,) = store.database.execute_sql("SELECT created_at FROM audit_logs").fetchone()
        assert raw == "2026-03-01 12:00:00.000000+00:00"  # text sorts as time only if all of it is UTC
        (row,) = list(store.model.select())
        assert row.created_at.utcoffset() == timedelta(0)
        store.database.execute_sql("UPDATE audit_logs SET created_at = '2026-03-01 12:00:00+09:00'")
        (row,) = list(store.model.select())
        assert row.created_at.utcoffset() == timedelta(0) and row.created_at.hour == 3
        store.database.execute_sql("UPDATE audit_logs SET created_at = '2026-03-01 12:00:00'")
        (row,) = list(store.model.select())
        assert row.created_at.hour == 12  # no offset: UTC, not the server's zone
        store.close()
    finally:
        monkeypatch.delenv("TZ")
        time_module.tzset()
