"""OCSF, CloudEvents and Splunk HEC, as `flask audit export --format` writes them: every OCSF
event has what the OCSF 1.3.0 schema requires of its class, and each field lands where a SIEM
looks for it."""

from __future__ import annotations

import json

import pytest

from flask_audit import AuditValidationError
from flask_audit.formats.ocsf import CLASSES, OCSF_VERSION
from flask_audit.integrations.flask_login import LOGIN_EVENT_TYPES
from flask_audit.pipeline.drain import Drainer
from flask_audit.vocabulary import ORIGINAL_DESIGN

# What OCSF 1.3.0 requires (https://schema.ocsf.io/1.3.0): the base event's required attributes,
# each class's own, and the "at least one of" constraints of the objects they hold.
BASE_REQUIRED = ("activity_id", "category_uid", "class_uid", "metadata", "severity_id", "time", "type_uid")
CLASS_REQUIRED = {
    6003: ("actor", "api", "src_endpoint"),
    3001: ("user",),
    3002: ("user",),
    3004: ("entity",),
}
CLASS_AT_LEAST_ONE = {3002: ("service", "dst_endpoint")}
OBJECT_AT_LEAST_ONE = {
    "actor": ("app_name", "app_uid", "authorizations", "idp", "invoked_by", "process", "session", "user"),
    "user": ("account", "name", "uid"),
    "src_endpoint": ("ip", "uid", "name", "hostname", "instance_uid", "interface_uid", "svc_name", "domain"),
    "entity": ("name", "uid", "data"),
}
SEVERITIES = {0, 1, 2, 3, 4, 5, 6, 99}
STATUSES = {0, 1, 2, 99}


def ocsf_problems(event: dict) -> list[str]:
    """Every way ``event`` breaks the OCSF 1.3.0 rules above; empty when it validates."""
    problems = [f"missing {name}" for name in BASE_REQUIRED if name not in event]
    class_uid = event.get("class_uid")
    if class_uid not in CLASS_REQUIRED:
        return [*problems, f"class_uid {class_uid} is not one of {sorted(CLASS_REQUIRED)}"]
    problems += [f"missing {name}" for name in CLASS_REQUIRED[class_uid] if name not in event]
    either = CLASS_AT_LEAST_ONE.get(class_uid)
    if either and not any(name in event for name in either):
        problems.append(f"needs one of {either}")
    for name, fields in OBJECT_AT_LEAST_ONE.items():
        if name in event and not any(event[name].get(f) for f in fields):
            problems.append(f"{name} needs one of {fields}")
    activities = {c.uid: set(c.activities.values()) for c in CLASSES.values()}[class_uid] | {0, 99}
    if event.get("activity_id") not in activities:
        problems.append(f"activity_id {event.get('activity_id')} is not an activity of {class_uid}")
    if event.get("type_uid") != class_uid * 100 + event.get("activity_id", -1):
        problems.append("type_uid is not class_uid * 100 + activity_id")
    if event.get("category_uid") != class_uid // 1000:
        problems.append("category_uid is not the class's category")
    if event.get("severity_id") not in SEVERITIES or event.get("status_id", 0) not in STATUSES:
        problems.append("severity_id or status_id out of range")
    if not isinstance(event.get("time"), int):
        problems.append("time is not an integer of milliseconds")
    metadata = event.get("metadata", {})
    if metadata.get("version") != OCSF_VERSION or not metadata.get("product", {}).get("vendor_name"):
        problems.append("metadata needs version and product.vendor_name")
    return problems


def test_the_checker_itself_finds_what_is_missing():
    assert "missing time" in ocsf_problems({"class_uid": 3001})
    assert "missing user" in ocsf_problems({"class_uid": 3001})
    assert ocsf_problems({"class_uid": 1})[-1] == "class_uid 1 is not one of [3001, 3002, 3004, 6003]"
    assert "actor needs one of" in " ".join(ocsf_problems({"class_uid": 6003, "actor": {"user": {}}}))


@pytest.fixture
def exported(make_app, pg_url, any_redis):
    """The app's events, stored, then exported in a format: a list of parsed lines."""
    client, prefix = any_redis
    app, audit = make_app(
        redis_client=client, AUDIT_KEY_PREFIX=prefix, AUDIT_DATABASE_URL=pg_url, AUDIT_EVENT_SOURCE="/shop"
    )
    audit.register_event_types(ORIGINAL_DESIGN + LOGIN_EVENT_TYPES)
    with app.test_request_context(
        "/x",
        headers={"User-Agent": "curl/8", "X-Request-ID": "req-7"},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    ):
        audit.log("permanent_ban_applied", user_id="admin1", resource_type="account", resource_id="acct9")
        audit.log("api_key_created", user_id="u1", resource_type="api_key", resource_id="k1", tenant_id="t1")
        audit.log("user_logged_in", outcome="failure", metadata={"username": "mallory"})
        audit.log("user_logged_out", user_id="u1", resource_type="user", resource_id="u1")
        audit.log("invoice_deleted", user_id="u2", outcome="denied", description="not yours")
    with app.app_context():
        audit.log("nightly_report", metadata={"rows": 3})  # outside a request: no client at all
    Drainer(audit.runtime(app).queue, audit.runtime(app).store).drain_all(100)

    def export(fmt: str) -> list[dict]:
        result = app.test_cli_runner().invoke(args=["audit", "export", "--format", fmt])
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.output.splitlines()]

    return export


def test_every_ocsf_event_has_what_its_class_requires(exported):
    events = exported("ocsf")
    assert len(events) == 6
    for event in events:
        assert ocsf_problems(event) == [], event


def test_each_event_type_lands_in_the_class_and_activity_its_vocabulary_names(exported):
    by_type = {e["unmapped"]["event_type"]: e for e in exported("ocsf")}
    shape = {name: (e["class_name"], e["activity_name"]) for name, e in by_type.items()}
    assert shape == {
        "permanent_ban_applied": ("Account Change", "Disable"),
        "api_key_created": ("Entity Management", "Create"),
        "user_logged_in": ("Authentication", "Logon"),
        "user_logged_out": ("Authentication", "Logoff"),
        "invoice_deleted": ("API Activity", "Delete"),  # not registered: read from the name
        "nightly_report": ("API Activity", "nightly_report"),  # no verb: Other
    }
    assert by_type["nightly_report"]["activity_id"] == 99
    assert by_type["permanent_ban_applied"]["user"] == {"uid": "acct9"}  # the account banned
    assert by_type["permanent_ban_applied"]["severity_id"] == 5
    assert by_type["user_logged_in"]["user"] == {"name": "mallory"}  # the name a failed login tried
    assert by_type["api_key_created"]["entity"] == {"type": "api_key", "uid": "k1"}
    assert by_type["nightly_report"]["src_endpoint"] == {"name": "unknown"}


def test_the_fields_go_where_the_issue_and_ocsf_put_them(exported):
    event = next(e for e in exported("ocsf") if e["unmapped"]["event_type"] == "invoice_deleted")
    assert event["actor"] == {"user": {"uid": "u2"}}
    assert event["src_endpoint"] == {"ip": "10.0.0.9"}
    assert event["http_request"] == {"user_agent": "curl/8", "uid": "req-7"}
    assert (event["status_id"], event["status"], event["status_detail"]) == (2, "Failure", "denied")
    assert event["message"] == "not yours"
    assert event["metadata"]["version"] == "1.3.0" and event["metadata"]["correlation_uid"] == "req-7"
    stored = {e["event_id"]: e for e in exported("jsonl")}
    assert event["metadata"]["uid"] in stored
    row = stored[event["metadata"]["uid"]]
    assert event["metadata"]["original_time"] == row["created_at"]
    assert event["unmapped"] == {
        "id": row["id"],
        "event_type": "invoice_deleted",
        "event_category": "info",
        "outcome": "denied",
    }
    tenant = next(e for e in exported("ocsf") if e["unmapped"]["event_type"] == "api_key_created")
    assert tenant["metadata"]["tenant_uid"] == "t1"
    nightly = next(e for e in exported("ocsf") if e["unmapped"]["event_type"] == "nightly_report")
    assert nightly["actor"] == {"app_name": "/shop"} and nightly["unmapped"]["metadata"] == {"rows": 3}
    assert nightly["status_id"] == 1 and "status_detail" not in nightly


def test_cloudevents_wrap_each_stored_event_in_the_1_0_envelope(exported):
    stored = exported("jsonl")
    envelopes = exported("cloudevents")
    assert [e["data"] for e in envelopes] == stored
    for envelope, row in zip(envelopes, stored, strict=True):
        assert envelope["specversion"] == "1.0"
        assert envelope["id"] == row["event_id"] and envelope["source"] == "/shop"
        assert envelope["type"] == "com.flask-audit." + row["event_type"]
        assert envelope["time"] == row["created_at"]
        assert envelope["datacontenttype"] == "application/json"
    subjects = {e["data"]["event_type"]: e.get("subject") for e in envelopes}
    assert subjects["api_key_created"] == "api_key/k1" and subjects["nightly_report"] is None
    assert next(e for e in envelopes if e["data"]["tenant_id"] == "t1")["tenantid"] == "t1"


def test_splunk_hec_events_carry_their_own_time_in_seconds(exported):
    from datetime import datetime

    stored = exported("jsonl")
    for hec, row in zip(exported("splunk-hec"), stored, strict=True):
        assert hec["event"] == row and hec["sourcetype"] == "flask-audit" and hec["source"] == "/shop"
        assert hec["time"] == round(datetime.fromisoformat(row["created_at"]).timestamp(), 6)


def test_a_wrong_ocsf_mapping_is_refused_at_registration(make_app):
    app, audit = make_app()
    with pytest.raises(AuditValidationError) as err:
        audit.register_event_type("x_done", ocsf="file_activity")
    assert str(err.value) == (
        "ocsf: the class must be one of api_activity, account_change, authentication, entity_management,"
        " not 'file_activity'"
    )
    with pytest.raises(AuditValidationError) as err:
        audit.register_event_type("x_done", ocsf="authentication:delete")
    assert str(err.value) == "ocsf: the activity of authentication must be one of logon, logoff, not 'delete'"
    assert audit.register_event_type("x_done", ocsf="api_activity:read").ocsf == "api_activity:read"


def test_the_default_source_names_the_app(make_app):
    app, audit = make_app()
    assert audit.runtime(app).config.event_source == f"/flask-audit/{app.name}"
