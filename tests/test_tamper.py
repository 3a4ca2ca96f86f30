"""Tamper evidence, tampered with for real: SQL against the table and the seals on SQLite and on
the real PostgreSQL, then `flask audit verify` as an operator runs it."""

from __future__ import annotations

import json

import pytest

from flask_audit.events import schema
from flask_audit.integrity.sealer import seal_pending
from flask_audit.integrity.seals import key_id, mac
from flask_audit.pipeline.drain import Drainer
from tests.test_migrations import seal_leaves_compression

KEY = "seal-key-one"
API = {"Authorization": "Bearer api-token"}


@pytest.fixture
def sealed(make_app, fake_redis, any_db_url):
    """An app whose 30 events are stored and sealed in one seal."""
    app, audit = make_app(
        redis_client=fake_redis,
        AUDIT_DATABASE_URL=any_db_url,
        AUDIT_SIGNING_KEY=KEY,
        AUDIT_API_TOKEN="api-token",
    )
    runtime = audit.runtime(app)
    with app.app_context():
        ids = [
            audit.log(
                "api_key_created",
                user_id=str(i),
                resource_type="key",
                resource_id=f"k{i}",
                description=f"key {i}",
                metadata={"n": i, "tags": ["a", "b"], "nested": {"z": 1, "a": 0.5}},
                ip_address="10.0.0.1",
                user_agent="agent",
                request_id=f"r{i}",
            )
            for i in range(30)
        ]
    Drainer(runtime.queue, runtime.store).drain_all(100)
    assert seal_pending(runtime.store, runtime.signer) == 30
    return app, audit, runtime, ids


def sql(runtime, statement, params=()):
    db = runtime.store.database
    statement = statement.replace("%s", db.param)
    with db.atomic():
        return db.execute_sql(statement, params)


def verify(app, *args):
    result = app.test_cli_runner().invoke(args=["audit", "verify", *args])
    return result.exit_code, result.output


def row_id(runtime, event_id):
    model = runtime.store.model
    return model.get(model.event_id == event_id).id


def test_an_untouched_log_verifies(sealed):
    app, audit, runtime, ids = sealed
    code, out = verify(app)
    assert code == 0
    assert out.strip().splitlines()[-1] == "intact: 30 rows in 1 seals verified"


NEW_VALUES = {
    "event_id": "00000000-0000-7000-8000-000000000001",
    "created_at": "2020-01-01 00:00:00+00:00",
    "event_type": "nothing_happened",
    "event_category": "warning",
    "user_id": "someone-else",
    "resource_type": "other",
    "resource_id": "k999",
    "description": "edited",
    "metadata": '{"n": 5, "tags": ["a", "b"], "nested": {"z": 1, "a": 0.5}, "x": 1}',
    "ip_address": "10.0.0.2",
    "user_agent": "other agent",
    "request_id": "r-forged",
    "outcome": "failure",
    "tenant_id": "another-tenant",
}


@pytest.mark.parametrize("column", schema.NAMES)
def test_a_change_to_any_column_of_any_row_is_named(sealed, column):
    app, audit, runtime, ids = sealed
    target = row_id(runtime, ids[5])
    value = NEW_VALUES[column]
    if column == "event_id" and not runtime.store.is_postgres:
        value = value.replace("-", "")
    if column == "created_at" and not runtime.store.is_postgres:
        value = "2020-01-01 00:00:00.000000+00:00"
    sql(runtime, f"UPDATE audit_logs SET {column} = %s WHERE id = %s", (value, target))
    code, out = verify(app)
    assert code == 1
    assert f"row_changed: row {target} ({ids[5]}) differs from what seal 1 sealed" in out
    assert out.strip().splitlines()[-1] == "TAMPERED: 29 rows in 1 seals verified"


def test_a_deleted_row_is_named(sealed):
    app, audit, runtime, ids = sealed
    target = row_id(runtime, ids[7])
    sql(runtime, "DELETE FROM audit_logs WHERE id = %s", (target,))
    code, out = verify(app, "--json")
    assert code == 1
    report = json.loads(out)
    assert [(p["kind"], p["event_id"], p["seal"]) for p in report["problems"]] == [("row_deleted", ids[7], 1)]


def forge(runtime, row_id, event_id):
    """A row as an attacker would write it: plausible values, under a chosen id."""
    columns = ", ".join(["id", *schema.NAMES])
    at = "2026-01-01 00:00:00+00:00" if runtime.store.is_postgres else "2026-01-01 00:00:00.000000+00:00"
    eid = event_id if runtime.store.is_postgres else event_id.replace("-", "")
    values = (row_id, eid, at, "api_key_created", "info", "42", None, None, None, None, None, None, None)
    values += ("success", None)
    sql(runtime, f"INSERT INTO audit_logs ({columns}) VALUES ({', '.join(['%s'] * len(values))})", values)


FORGED = "00000000-0000-7000-8000-00000000f0f0"


def test_a_row_slipped_into_a_gap_of_a_sealed_range_is_named(make_app, fake_redis, any_db_url):
    """Ids have gaps (a rolled-back insert consumes one): a forged row there has no leaf."""
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=any_db_url)
    runtime = audit.runtime(app)
    with app.app_context():
        ids = [audit.critical("permanent_ban_applied", user_id=str(i)) for i in range(5)]
    gap = row_id(runtime, ids[2])
    sql(runtime, "DELETE FROM audit_logs WHERE id = %s", (gap,))  # before sealing: a gap, not tampering
    seal_pending(runtime.store, runtime.signer)
    assert verify(app)[0] == 0
    forge(runtime, gap, FORGED)
    code, out = verify(app)
    assert code == 1
    assert f"row_inserted: row {gap} ({FORGED}) is in seal 1's range but not in the seal" in out


def test_a_forged_row_below_the_first_seal_is_named(sealed):
    app, audit, runtime, ids = sealed
    forge(runtime, 0, FORGED)
    code, out = verify(app)
    assert code == 1 and f"row_inserted: row 0 ({FORGED}) is not covered by any seal" in out


def test_a_row_moved_to_another_id_is_named_by_what_was_sealed_there(sealed):
    app, audit, runtime, ids = sealed
    target = row_id(runtime, ids[3])
    sql(runtime, "DELETE FROM audit_logs WHERE id = %s", (target,))
    sql(runtime, "UPDATE audit_logs SET id = %s WHERE id = %s", (target, target + 1))
    code, out = verify(app, "--json")
    assert code == 1
    problems = sorted((p["kind"], p["event_id"]) for p in json.loads(out)["problems"])
    assert problems == sorted([("row_changed", ids[3]), ("row_deleted", ids[4])])


def test_a_changed_seal_is_named(sealed):
    app, audit, runtime, ids = sealed
    sql(runtime, "UPDATE audit_seals SET row_count = 29 WHERE seq = 1")
    code, out = verify(app)
    assert code == 1 and "seal_changed: seal 1 was changed after it was made" in out


def test_a_seal_rewritten_without_the_key_is_a_forgery(sealed):
    """An attacker who knows the algorithm but not the key recomputes the hash, not the MAC."""
    app, audit, runtime, ids = sealed
    from flask_audit.integrity import seals

    original = seals.latest(runtime.store)
    forged = runtime.signer.__class__("not-the-key").seal(original)
    sql(
        runtime,
        "UPDATE audit_seals SET mac = %s, key_id = %s WHERE seq = 1",
        (mac("not-the-key", forged.hash), key_id(KEY)),
    )
    code, out = verify(app)
    assert code == 1 and "seal_forged: seal 1 has a MAC that the key does not give" in out


def test_more_seals_then_delete_and_reorder_them(make_app, fake_redis, any_db_url):
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=any_db_url, AUDIT_SIGNING_KEY=KEY)
    runtime = audit.runtime(app)
    for batch in range(3):
        with app.app_context():
            for i in range(5):
                audit.critical("permanent_ban_applied", user_id=f"{batch}-{i}")
        seal_pending(runtime.store, runtime.signer)
    assert verify(app)[0] == 0
    sql(runtime, "UPDATE audit_seals SET seq = 99 WHERE seq = 2")
    sql(runtime, "UPDATE audit_seals SET seq = 2 WHERE seq = 3")
    sql(runtime, "UPDATE audit_seals SET seq = 3 WHERE seq = 99")
    code, out = verify(app)
    assert code == 1 and "chain_broken: seal 2" in out and "seal_changed: seal 2" in out
    sql(runtime, "DELETE FROM audit_seals WHERE seq = 2")
    code, out = verify(app)
    assert code == 1 and "seal_missing: seal 3 follows seal 1" in out


def test_purged_rows_keep_the_chain_green_and_what_remains_is_still_watched(make_app, fake_redis, any_db_url):
    from datetime import datetime, timedelta, timezone

    from flask_audit.events.event import build_event

    app, audit = make_app(
        redis_client=fake_redis, AUDIT_DATABASE_URL=any_db_url, AUDIT_SIGNING_KEY=KEY, AUDIT_PURGE_CHUNK=3
    )
    runtime = audit.runtime(app)
    old = datetime.now(timezone.utc) - timedelta(days=40)
    runtime.store.insert([build_event("old", created_at=old, user_id=str(i)) for i in range(10)])
    recent = [build_event("recent", user_id=str(i)) for i in range(5)]
    runtime.store.insert(recent)
    seal_pending(runtime.store, runtime.signer)
    result = app.test_cli_runner().invoke(args=["audit", "purge", "--older-than", "30", "--yes"])
    assert "deleted 10 row(s)" in result.output
    code, out = verify(app)
    assert code == 0 and out.strip().splitlines()[-1] == "intact: 5 rows in 2 seals verified"
    sql(
        runtime,
        "UPDATE audit_logs SET description = 'edited' WHERE id = %s",
        (row_id(runtime, recent[2].event_id),),
    )
    code, out = verify(app)
    assert code == 1 and f"({recent[2].event_id}) differs from what seal 1 sealed" in out


def test_deleting_young_rows_is_not_excused_by_a_checkpoint(make_app, fake_redis, any_db_url):
    from datetime import datetime, timedelta, timezone

    from flask_audit.events.event import build_event

    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=any_db_url)
    runtime = audit.runtime(app)
    runtime.store.insert([build_event("old", created_at=datetime.now(timezone.utc) - timedelta(days=40))])
    with app.app_context():
        ids = [audit.critical("permanent_ban_applied", user_id=str(i)) for i in range(4)]
    seal_pending(runtime.store, runtime.signer)
    purge = app.test_cli_runner().invoke(args=["audit", "purge", "--older-than", "30", "--yes"])
    assert "deleted 1 row(s)" in purge.output  # a checkpoint now excuses rows older than 30 days
    assert verify(app)[0] == 0
    sql(runtime, "DELETE FROM audit_logs WHERE id = %s", (row_id(runtime, ids[1]),))
    code, out = verify(app)
    assert code == 1 and "row_deleted: row" in out and ids[1] in out


def test_seals_survive_a_key_rotation_while_the_old_key_is_listed(make_app, fake_redis, any_db_url):
    def app_with(**keys):
        return make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=any_db_url, **keys)

    app, audit = app_with(AUDIT_SIGNING_KEY="key-2025")
    with app.app_context():
        audit.critical("permanent_ban_applied", user_id="1")
    seal_pending(audit.runtime(app).store, audit.runtime(app).signer)
    rotated, audit2 = app_with(AUDIT_SIGNING_KEY="key-2026", AUDIT_SIGNING_KEYS_OLD="key-2024,key-2025")
    with rotated.app_context():
        audit2.critical("permanent_ban_applied", user_id="2")
    seal_pending(audit2.runtime(rotated).store, audit2.runtime(rotated).signer)
    code, out = verify(rotated)
    assert code == 0 and out.strip().splitlines()[-1] == "intact: 2 rows in 2 seals verified"
    forgetful, _ = app_with(AUDIT_SIGNING_KEY="key-2026")
    code, out = verify(forgetful)
    assert code == 1
    assert f"seal_unknown_key: seal 1 is signed by key {key_id('key-2025')}, which is not configured" in out


def test_without_a_key_seals_are_chained_and_said_to_be_unsigned(make_app, fake_redis, any_db_url):
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=any_db_url)
    runtime = audit.runtime(app)
    with app.app_context():
        audit.critical("permanent_ban_applied", user_id="1")
    seal_pending(runtime.store, runtime.signer)
    code, out = verify(app)
    assert code == 0
    assert out.strip().splitlines()[-1] == (
        "intact: 1 rows in 1 seals verified (1 seals unsigned: no AUDIT_SIGNING_KEY when they were made)"
    )


def test_stripping_the_mac_of_a_signed_chain_is_named(sealed):
    app, audit, runtime, ids = sealed
    with app.app_context():
        audit.critical("permanent_ban_applied", user_id="x")
    seal_pending(runtime.store, runtime.signer)
    sql(runtime, "UPDATE audit_seals SET mac = NULL, key_id = NULL WHERE seq = 2")
    code, out = verify(app)
    assert code == 1 and "seal_unsigned: seal 2 is unsigned, after signed seals" in out


def test_rows_not_sealed_yet_are_counted_not_blamed(sealed):
    app, audit, runtime, ids = sealed
    with app.app_context():
        audit.critical("permanent_ban_applied", user_id="x")
    code, out = verify(app, "--json")
    report = json.loads(out)
    assert code == 0 and (report["rows"], report["unsealed_rows"]) == (30, 1)


def test_a_proof_from_the_api_checks_offline_and_a_doctored_one_does_not(sealed, tmp_path):
    app, audit, runtime, ids = sealed
    response = app.test_client().get(f"/api/v1/audit-logs/{ids[9]}/proof", headers=API)
    assert response.status_code == 200, response.data
    proof = response.json
    assert proof["event_id"] == ids[9] and proof["tree_size"] == 30 and proof["seal"]["seq"] == 1
    assert len(proof["audit_path"]) == 5  # ceil(log2(30))
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    code, out = verify(app, "--proof", str(path))
    assert code == 0 and out.strip() == f"valid: event {ids[9]} in seal 1 (signed)"
    doctored = {**proof, "canonical": proof["canonical"].replace('"api_key_created"', '"api_key_deleted"')}
    path.write_text(json.dumps(doctored))
    code, out = verify(app, "--proof", str(path))
    assert code == 1 and "problem: the leaf hash is not the canonical row's" in out


def test_a_row_not_sealed_yet_has_no_proof_yet(sealed):
    app, audit, runtime, ids = sealed
    with app.app_context():
        event_id = audit.critical("permanent_ban_applied", user_id="x")
    response = app.test_client().get(f"/api/v1/audit-logs/{event_id}/proof", headers=API)
    assert response.status_code == 409 and "not sealed yet" in response.json["error"]
    seal_pending(runtime.store, runtime.signer)
    assert app.test_client().get(f"/api/v1/audit-logs/{event_id}/proof", headers=API).status_code == 200
    assert app.test_client().get(f"/api/v1/audit-logs/{event_id}/proof").status_code == 401


def test_the_readme_verifier_checks_a_proof_without_the_package(sealed, tmp_path):
    """The twenty-line verifier of the README, run as a user would: a separate Python, no
    flask_audit on its path."""
    import subprocess
    import sys
    from pathlib import Path

    app, audit, runtime, ids = sealed
    proof = app.test_client().get(f"/api/v1/audit-logs/{ids[0]}/proof", headers=API).json
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    code = readme.split("<!-- standalone verifier -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    (tmp_path / "check_proof.py").write_text(code)
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    run = subprocess.run(
        [sys.executable, "-I", "check_proof.py", "proof.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        run.returncode == 0 and run.stdout.strip() == f"ok: {ids[0]} is in seal 1 ({proof['seal']['root']})"
    )
    proof["audit_path"][0] = "00" * 32
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    run = subprocess.run(
        [sys.executable, "-I", "check_proof.py", "proof.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and "does not lead to the seal's root" in run.stdout


def test_the_clock_seals_verifies_and_alerts_on_tampering(make_app, fake_redis, any_db_url):
    """The scheduled jobs as the scheduler holds them: audit-seal seals, audit-verify finds a
    changed row, /metrics and health show it, and integrity_violation fires."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from dramatiq.brokers.stub import StubBroker

    from flask_audit.pipeline.clock import Clock
    from flask_audit.pipeline.tasks import declare

    app, audit = make_app(
        redis_client=fake_redis,
        AUDIT_DATABASE_URL=any_db_url,
        AUDIT_SIGNING_KEY=KEY,
        AUDIT_MONITORING_TOKEN="mon",
    )
    runtime = audit.runtime(app)
    broker = StubBroker()
    clock = Clock(runtime, broker, declare(broker, runtime))
    scheduler = BackgroundScheduler(timezone="UTC")
    clock.schedule(scheduler)
    jobs = {job.id: job.func for job in scheduler.get_jobs()}
    with app.app_context():
        ids = [audit.critical("permanent_ban_applied", user_id=str(i)) for i in range(3)]
    jobs["audit-seal"]()
    jobs["audit-verify"]()
    metrics = app.test_client().get("/metrics", headers={"Authorization": "Bearer mon"}).text
    assert "audit_integrity_last_verified_seal 1.0" in metrics and "audit_integrity_problems 0.0" in metrics
    sql(runtime, "UPDATE audit_logs SET user_id = 'x' WHERE id = %s", (row_id(runtime, ids[1]),))
    jobs["audit-verify"]()
    metrics = app.test_client().get("/metrics", headers={"Authorization": "Bearer mon"}).text
    assert "audit_integrity_problems 1.0" in metrics
    health = app.test_client().get(
        "/api/v1/monitoring/audit-metrics", headers={"Authorization": "Bearer mon"}
    )
    assert "Integrity violation! 1 problems in the latest seals" in health.json["health"]["issues"]
    data = app.test_client().get("/api/v1/monitoring/dashboard/data", headers={"Authorization": "Bearer mon"})
    assert data.json["snapshot"]["integrity"]["problems"] == 1
    notices = clock.alert()
    assert [(n.rule, n.severity, n.status) for n in notices] == [
        ("integrity_violation", "critical", "firing")
    ]


def test_dropped_partitions_keep_the_chain_green(make_app, fake_redis, pg_url):
    from datetime import datetime, timedelta, timezone

    from flask_audit.events.event import build_event

    app, audit = make_app(
        redis_client=fake_redis,
        AUDIT_DATABASE_URL=pg_url,
        AUDIT_PARTITIONING="monthly",
        AUDIT_SIGNING_KEY=KEY,
    )
    runtime = audit.runtime(app)
    from flask_audit.storage.partitions import ensure_partitions

    old = datetime.now(timezone.utc) - timedelta(days=120)
    ensure_partitions(runtime.store, now=old, ahead=0)
    runtime.store.insert([build_event("old", created_at=old, user_id=str(i)) for i in range(6)])
    runtime.store.insert([build_event("recent", user_id=str(i)) for i in range(4)])
    seal_pending(runtime.store, runtime.signer)
    purge = app.test_cli_runner().invoke(args=["audit", "purge", "--older-than", "30", "--yes"])
    assert "dropped partitions: audit_logs_p" in purge.output
    code, out = verify(app)
    assert code == 0 and out.strip().splitlines()[-1] == "intact: 4 rows in 2 seals verified"


def test_a_window_of_seals_is_verified_from_the_seal_before_it(make_app, fake_redis, any_db_url):
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=any_db_url, AUDIT_SIGNING_KEY=KEY)
    runtime = audit.runtime(app)
    stamps = []
    for batch in range(3):
        with app.app_context():
            audit.critical("permanent_ban_applied", user_id=str(batch))
        seal_pending(runtime.store, runtime.signer)
        stamps.append(sql(runtime, "SELECT max(sealed_at) FROM audit_seals").fetchone()[0])
    code, out = verify(app, "--since", stamps[1], "--json")
    report = json.loads(out)
    assert code == 0 and (report["seals"], report["rows"]) == (2, 2)
    code, out = verify(app, "--until", stamps[0], "--json")
    assert code == 0 and (json.loads(out)["seals"], json.loads(out)["rows"]) == (1, 1)
    sql(runtime, "UPDATE audit_logs SET user_id = 'x' WHERE user_id = '0'")
    assert verify(app, "--since", stamps[1])[0] == 0  # the change is outside the window
    assert verify(app, "--until", stamps[0])[0] == 1
    code, out = verify(app, "--since", "last tuesday")
    assert code == 2 and "'last tuesday' is not an ISO 8601 time" in out


def test_fields_added_later_leave_the_canonical_form_of_older_rows_alone():
    """outcome and tenant_id came in release 4: a row without them (sealed before) keeps the
    twelve-field form; where they are set they join as one trailing object."""
    from flask_audit.integrity import canonical

    row = (7, 1_700_000_000_000_000, "01a21d0f-0000-7000-8000-000000000001", None)
    row += ("x", "info", "u", None, None, None, '{"b": 1, "a": 2}', None, None, None)
    base = (
        b'["01a21d0f-0000-7000-8000-000000000001","2023-11-14T22:13:20.000000Z","x","info","u",'
        b'null,null,null,{"a":2,"b":1},null,null,null'
    )
    assert canonical._canonical((*row, None, None), postgres=True).canonical == base + b"]"
    assert (
        canonical._canonical((*row, "failure", None), postgres=True).canonical
        == base + b',{"outcome":"failure"}]'
    )
    both = canonical._canonical((*row, "denied", "t1"), postgres=True).canonical
    assert both == base + b',{"outcome":"denied","tenant_id":"t1"}]'


def test_a_row_has_the_same_canonical_form_in_sqlite_and_in_postgresql(sqlite_url, pg_url):
    from datetime import datetime, timezone

    from flask_audit.events.event import build_event
    from flask_audit.integrity.canonical import rows_between
    from flask_audit.storage.store import AuditStore

    at = datetime(2026, 2, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    event = build_event(
        "x", created_at=at, user_id="ü", description="a\\nb", metadata={"z": [1, 2.5, None], "a": {"é": True}}
    )
    forms = []
    for url in (sqlite_url, pg_url):
        store = AuditStore(url)
        store.create_schema()
        store.insert([event])
        (row,) = rows_between(store, 0, 10)
        forms.append(row.canonical)
        store.close()
    assert forms[0] == forms[1]
    assert forms[0].startswith(f'["{event.event_id}","2026-02-03T04:05:06.000007Z","x","info","ü"'.encode())


def test_the_compiled_postgresql_form_is_the_generic_one():
    from flask_audit.integrity import canonical

    for outcome, tenant, metadata in [
        (None, None, None),
        ("success", None, '{"b": 1, "a": [1, 2.5]}'),
        ("denied", "t1", None),
        (None, "t2", "{}"),
    ]:
        record = (5, 1_700_000_000_123_456, "01a21d0f-0000-7000-8000-000000000001", None, "x", "info", "u")
        record += (None, "rid", "d\\n", metadata, "1.2.3.4", "ua", "req", outcome, tenant)
        assert canonical._canonical_pg(record) == canonical._canonical(record, postgres=True)
        assert b'"2023-11-14T22:13:20.123456Z"' in canonical._canonical_pg(record).canonical
    # the second's text is cached: a row of another second, and one before the epoch, get their own
    for micros, text in [
        (1_700_000_001_000_001, b"2023-11-14T22:13:21.000001Z"),
        (-1, b"1969-12-31T23:59:59.999999Z"),
    ]:
        record = (6, micros, "01a21d0f-0000-7000-8000-000000000002", None, "x", "info", None)
        record += (None, None, None, None, None, None, None, "success", None)
        assert canonical._canonical_pg(record) == canonical._canonical(record, postgres=True)
        assert b'"' + text + b'"' in canonical._canonical_pg(record).canonical


def test_the_clocks_verification_walks_the_latest_seals_and_logs_each_problem(
    make_app, fake_redis, any_db_url, monkeypatch, caplog
):
    """audit-verify checks the last VERIFY_RECENT_SEALS seals (here 2 of 4), records what it
    found (the last seal, the problems, the rows not sealed yet) and logs each problem."""
    import logging

    from dramatiq.brokers.stub import StubBroker

    from flask_audit.pipeline import clock as clock_module
    from flask_audit.pipeline.clock import Clock
    from flask_audit.pipeline.tasks import declare

    monkeypatch.setattr(clock_module, "VERIFY_RECENT_SEALS", 2)
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=any_db_url, create_schema=False)
    runtime = audit.runtime(app)
    runtime.store.database.execute_sql(
        "CREATE TABLE IF NOT EXISTS placeholder (x INTEGER)"
    )  # no audit tables yet
    from flask_audit.storage.store import AuditStore

    AuditStore.create_schema(runtime.store)
    runtime.store.database.execute_sql("DROP TABLE audit_seals")  # a database not migrated to 3
    broker = StubBroker()
    clock = Clock(runtime, broker, declare(broker, runtime))
    follower = Clock(runtime, broker, clock.actors)
    clock.elect()
    assert follower.seal() == 0 and follower.verify() is None
    ids = []
    for batch in range(4):
        with app.app_context():
            ids.append(audit.critical("permanent_ban_applied", user_id=str(batch)))
        assert clock.seal() == 1  # creates the seals table the first time
    with app.app_context():
        audit.critical("permanent_ban_applied", user_id="unsealed")
    sql(runtime, "UPDATE audit_logs SET user_id = 'x' WHERE id = %s", (row_id(runtime, ids[0]),))  # seal 1
    report = clock.verify()
    assert (report.seals, report.rows, report.problems) == (2, 2, [])  # seals 3 and 4 only
    snapshot = runtime.metrics.snapshot()
    assert (snapshot.integrity_last_seal, snapshot.integrity_problems, snapshot.unsealed_rows) == (4, 0, 1)
    sql(runtime, "UPDATE audit_logs SET user_id = 'x' WHERE id = %s", (row_id(runtime, ids[3]),))  # seal 4
    with caplog.at_level(logging.ERROR, logger="flask_audit.pipeline.clock"):
        report = clock.verify()
    assert [p.kind for p in report.problems] == ["row_changed"]
    assert caplog.messages == [f"integrity: row_changed: {report.problems[0].detail}"]
    assert runtime.metrics.snapshot().integrity_problems == 1


def test_the_nightly_purge_names_every_partition_it_drops(make_app, fake_redis, pg_url, caplog):
    import logging
    from datetime import datetime, timedelta, timezone

    from dramatiq.brokers.stub import StubBroker

    from flask_audit.events.event import build_event
    from flask_audit.pipeline.clock import Clock
    from flask_audit.pipeline.tasks import declare
    from flask_audit.storage.partitions import ensure_partitions, month_start, partition_name

    app, audit = make_app(
        redis_client=fake_redis,
        AUDIT_DATABASE_URL=pg_url,
        AUDIT_PARTITIONING="monthly",
        AUDIT_RETENTION_DAYS=30,
    )
    runtime = audit.runtime(app)
    now = datetime.now(timezone.utc)
    olds = [now - timedelta(days=days) for days in (160, 120)]
    for old in olds:
        ensure_partitions(runtime.store, now=old, ahead=0)
        runtime.store.insert([build_event("old", created_at=old)])
    broker = StubBroker()
    clock = Clock(runtime, broker, declare(broker, runtime))
    clock.elect()
    with caplog.at_level(logging.INFO, logger="flask_audit.pipeline.clock"):
        clock.purge()  # whole months dropped: their rows are not counted one by one
    names = ", ".join(partition_name(month_start(o.year, o.month)) for o in olds)
    assert f"retention: 0 rows older than 30 days purged; partitions dropped: {names}" in caplog.messages


def test_the_clocks_verification_before_any_seal_counts_every_row_as_unsealed(make_app, fake_redis):
    from dramatiq.brokers.stub import StubBroker

    from flask_audit.pipeline.clock import Clock
    from flask_audit.pipeline.tasks import declare

    app, audit = make_app(redis_client=fake_redis)
    runtime = audit.runtime(app)
    with app.app_context():
        for i in range(3):
            audit.critical("permanent_ban_applied", user_id=str(i))
    broker = StubBroker()
    clock = Clock(runtime, broker, declare(broker, runtime))
    clock.elect()
    report = clock.verify()
    assert (report.seals, report.rows, report.problems) == (0, 0, [])
    snapshot = runtime.metrics.snapshot()
    assert (snapshot.integrity_last_seal, snapshot.unsealed_rows) == (0, 3)


def test_a_verify_interval_under_a_second_still_schedules_the_job(make_app, fake_redis):
    from apscheduler.schedulers.background import BackgroundScheduler
    from dramatiq.brokers.stub import StubBroker

    from flask_audit.pipeline.clock import Clock
    from flask_audit.pipeline.tasks import declare

    app, audit = make_app(redis_client=fake_redis, AUDIT_VERIFY_INTERVAL_SECONDS=0.5)
    runtime = audit.runtime(app)
    broker = StubBroker()
    scheduler = BackgroundScheduler(timezone="UTC")
    Clock(runtime, broker, declare(broker, runtime)).schedule(scheduler)
    assert scheduler.get_job("audit-verify").trigger.interval.total_seconds() == 0.5


def seal_compressions(runtime) -> list[str | None]:
    """How each seal's leaves are stored, in seq order: 'lz4', 'pglz', or None (not compressed)."""
    rows = sql(runtime, "SELECT pg_column_compression(leaves) FROM audit_seals ORDER BY seq").fetchall()
    return [r[0] for r in rows]


def test_seals_made_before_and_after_migrating_to_lz4_leaves_verify_together(make_app, fake_redis, pg_url):
    """Migration 6 has new seals' leaves compressed with lz4 (pglz spent two thirds of a seal's
    insert on them); seals stored with pglz before it are still read, and a change to a row under
    either kind of seal is still named."""
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=pg_url, AUDIT_SIGNING_KEY=KEY)
    runtime = audit.runtime(app)
    assert seal_leaves_compression(runtime.store) == "l"  # a new schema has it from the start
    sql(runtime, "ALTER TABLE audit_seals ALTER COLUMN leaves SET COMPRESSION pglz")  # as before it

    def log_and_seal(prefix):
        with app.app_context():
            for i in range(300):  # 21,600 bytes of leaves: past the size PostgreSQL compresses at
                audit.log("api_key_created", user_id=f"{prefix}{i}", resource_type="key", resource_id=f"k{i}")
        Drainer(runtime.queue, runtime.store).drain_all(100)
        assert seal_pending(runtime.store, runtime.signer) == 300

    log_and_seal("before-")
    migrate = app.test_cli_runner().invoke(args=["audit", "migrate"])
    assert migrate.exit_code == 0 and "applied 0006" in migrate.output, migrate.output
    log_and_seal("after-")
    old, new = seal_compressions(runtime)
    assert old != "lz4" and new == "lz4"  # pglz kept the old one whole: it saved too little
    assert verify(app)[0] == 0
    model = runtime.store.model
    for prefix in ("before-", "after-"):
        changed = model.get(model.user_id == f"{prefix}7").id
        sql(runtime, "UPDATE audit_logs SET description = 'edited' WHERE id = %s", (changed,))
        code, out = verify(app)
        assert code == 1 and f"row_changed: row {changed} (" in out, out
