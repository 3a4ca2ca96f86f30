"""The example app uses what it shows: outcomes, tenants and the registered vocabulary."""

from __future__ import annotations

from examples.app import create_app
from flask_audit.testing import capture


def test_the_example_records_outcomes_tenants_and_registered_categories():
    app = create_app({"TESTING": True})
    client = app.test_client()
    with capture(app) as events:
        client.post("/api/v1/accounts/7/upgrade", json={"plan": "gold"}, headers={"X-Tenant-ID": "acme"})
        client.post("/api/v1/accounts/7/upgrade", headers={"X-User-ID": "8"})
        client.post("/api/v1/accounts/7/upgrade", headers={"X-User-ID": "7", "X-Tenant-ID": "acme"})
        client.post("/api/v1/usage", json={"calls": 8000}, headers={"X-User-ID": "7"})
        client.post("/api/v1/accounts/9/ban")
    assert [(e["event_type"], e["outcome"], e["tenant_id"], e["event_category"]) for e in events] == [
        ("account_upgraded", "failure", "acme", "info"),
        ("account_upgraded", "denied", None, "info"),
        ("account_upgraded", "success", "acme", "info"),
        ("usage_warning_80_percent", "success", None, "warning"),
        ("permanent_ban_applied", "success", None, "critical"),
    ]
    assert events[0]["metadata"] == {"requested_plan": "gold"}
