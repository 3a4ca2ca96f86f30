"""outcome and tenant_id: stored, filtered in the API and the export, counted by outcome, the
tenant captured per request, and an API scoped to one tenant."""

from __future__ import annotations

import json

import pytest

from flask_audit import AuditValidationError
from flask_audit.pipeline.drain import Drainer


@pytest.fixture
def stored(make_app, fake_redis, any_db_url):
    """Six events of two tenants and three outcomes, drained into the database."""
    app, audit = make_app(
        redis_client=fake_redis,
        AUDIT_DATABASE_URL=any_db_url,
        AUDIT_API_TOKEN="all-tenants",
        AUDIT_MONITORING_TOKEN="mon",
    )
    runtime = audit.runtime(app)
    with app.app_context():
        ids = {
            ("acme", "success"): audit.log("login", user_id="1", tenant_id="acme"),
            ("acme", "failure"): audit.log("login", user_id="1", tenant_id="acme", outcome="failure"),
            ("acme", "denied"): audit.log("export", user_id="1", tenant_id="acme", outcome="denied"),
            ("globex", "success"): audit.log("login", user_id="2", tenant_id="globex"),
            ("globex", "denied"): audit.log("export", user_id="2", tenant_id="globex", outcome="denied"),
            (None, "success"): audit.critical("permanent_ban_applied", user_id="3"),
        }
    Drainer(runtime.queue, runtime.store).drain_all(100)
    return app, audit, runtime, ids


def api(app, path, token="all-tenants"):
    return app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})


def test_outcome_defaults_to_success_and_refuses_anything_else(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    with app.app_context(), pytest.raises(AuditValidationError) as err:
        audit.log("x", outcome="maybe")
    assert str(err.value) == "outcome: must be one of success, failure, denied"
    with app.app_context(), pytest.raises(AuditValidationError):
        audit.critical("x", outcome="ok")


def test_the_api_filters_by_outcome_and_tenant(stored):
    app, audit, runtime, ids = stored
    denied = api(app, "/api/v1/audit-logs?outcome=denied").json["items"]
    assert {row["event_id"] for row in denied} == {ids[("acme", "denied")], ids[("globex", "denied")]}
    acme = api(app, "/api/v1/audit-logs?tenant_id=acme&outcome=failure").json["items"]
    assert [row["event_id"] for row in acme] == [ids[("acme", "failure")]]
    assert acme[0]["outcome"] == "failure" and acme[0]["tenant_id"] == "acme"
    bad = api(app, "/api/v1/audit-logs?outcome=meh")
    assert bad.status_code == 400 and bad.json["field"] == "outcome"


def test_the_export_filters_by_outcome_and_tenant(stored):
    app, audit, runtime, ids = stored
    out = app.test_cli_runner().invoke(
        args=["audit", "export", "--outcome", "denied", "--tenant-id", "globex"]
    )
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert [row["event_id"] for row in rows] == [ids[("globex", "denied")]]


def test_stored_events_are_counted_by_outcome_in_metrics(stored):
    app, audit, runtime, ids = stored
    text = app.test_client().get("/metrics", headers={"Authorization": "Bearer mon"}).text
    assert 'audit_events_by_outcome_total{outcome="success"} 2.0' in text  # the critical one is direct
    assert 'audit_events_by_outcome_total{outcome="failure"} 1.0' in text
    assert 'audit_events_by_outcome_total{outcome="denied"} 2.0' in text


def test_an_authorize_that_names_a_tenant_scopes_the_api_to_it(fake_redis, any_db_url, tmp_path):
    from flask import Flask, request

    from flask_audit import FlaskAudit

    app = Flask("tenants", instance_path=str(tmp_path / "instance"))
    audit = FlaskAudit(
        app,
        redis=fake_redis,
        AUDIT_DATABASE_URL=any_db_url,
        AUDIT_TESTING=False,
        tenant_loader=lambda: request.headers.get("X-Tenant"),
        authorize=lambda req: {"key-acme": "acme", "key-admin": True}.get(req.headers.get("X-Key")),
    )
    runtime = audit.runtime(app)
    runtime.store.create_schema()

    @app.post("/act")
    def act():
        audit.log("acted", user_id="1")
        return "ok"

    client = app.test_client()
    client.post("/act", headers={"X-Tenant": "acme"})
    client.post("/act", headers={"X-Tenant": "globex"})
    Drainer(runtime.queue, runtime.store).drain_all(100)

    def get(path, key):
        return client.get(path, headers={"X-Key": key})

    mine = get("/api/v1/audit-logs", "key-acme").json["items"]
    assert [row["tenant_id"] for row in mine] == ["acme"]
    assert get("/api/v1/audit-logs?tenant_id=acme", "key-acme").status_code == 200
    other = get("/api/v1/audit-logs?tenant_id=globex", "key-acme")
    assert other.status_code == 403 and other.json == {"error": "this token is scoped to another tenant"}
    everything = get("/api/v1/audit-logs", "key-admin").json["items"]
    assert sorted(row["tenant_id"] for row in everything) == ["acme", "globex"]
    globex_id = next(row["event_id"] for row in everything if row["tenant_id"] == "globex")
    assert get(f"/api/v1/audit-logs/{globex_id}", "key-acme").status_code == 404
    assert get(f"/api/v1/audit-logs/{globex_id}/proof", "key-acme").status_code == 404
    assert get(f"/api/v1/audit-logs/{globex_id}", "key-admin").status_code == 200
    assert get("/api/v1/audit-logs", "no-such-key").status_code == 401
    runtime.store.close()
