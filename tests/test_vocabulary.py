"""Registered event types: the default category, strict mode, a warning once, and the listing."""

from __future__ import annotations

import json
import logging

import pytest

from flask_audit import AuditValidationError
from flask_audit.testing import capture
from flask_audit.vocabulary import ORIGINAL_DESIGN, EventType


def test_a_registered_type_gives_its_category_when_log_gets_none(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    audit.register_event_types(ORIGINAL_DESIGN)
    with capture(app) as events, app.app_context():
        audit.log("usage_limit_reached", user_id="1")
        audit.log("usage_limit_reached", user_id="2", event_category="critical")  # given wins
        audit.log("api_key_created")
    assert [e["event_category"] for e in events] == ["warning", "critical", "info"]


def test_an_unregistered_type_is_refused_in_strict_mode(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis, AUDIT_STRICT_EVENT_TYPES=True)
    audit.register_event_type("api_key_created", category="info", resource_type="api_key")
    with app.app_context(), pytest.raises(AuditValidationError) as err:
        audit.log("api_key_craeted")
    assert str(err.value) == (
        "event_type: 'api_key_craeted' is not a registered event type (register it with audit.register_event_type)"
    )
    with app.app_context(), pytest.raises(AuditValidationError):
        audit.critical("not_registered_either")


def test_otherwise_it_is_logged_once_as_a_warning(make_app, fake_redis, caplog):
    app, audit = make_app(redis_client=fake_redis)
    audit.register_event_type("api_key_created")
    with app.app_context(), caplog.at_level(logging.WARNING, logger="flask_audit.vocabulary"):
        for _ in range(3):
            audit.log("api_key_craeted")
        audit.log("api_key_created")
    assert caplog.messages == ["audit event type 'api_key_craeted' is not registered (a typo?)"]


def test_an_app_that_registers_nothing_hears_nothing(make_app, fake_redis, caplog):
    app, audit = make_app(redis_client=fake_redis)
    with app.app_context(), caplog.at_level(logging.WARNING, logger="flask_audit.vocabulary"):
        audit.log("anything_goes")
    assert caplog.messages == []


def test_registration_refuses_bad_names_categories_and_a_conflicting_second_definition(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    with pytest.raises(AuditValidationError, match="letters, digits"):
        audit.register_event_type("has space")
    with pytest.raises(AuditValidationError, match="category"):
        audit.register_event_type("x", category="fatal")
    audit.register_event_type("x", category="warning")
    audit.register_event_type("x", category="warning")  # the same again: fine
    with pytest.raises(AuditValidationError, match="already registered differently"):
        audit.register_event_type("x", category="info")


def test_event_types_lists_registered_types_with_counts_and_the_unregistered_ones_seen(
    make_app, fake_redis, any_db_url
):
    from datetime import datetime, timedelta, timezone

    from flask_audit.events.event import build_event

    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=any_db_url)
    audit.register_event_types(ORIGINAL_DESIGN)
    audit.register_event_type("report_exported", category="info", description="A report left the building.")
    store = audit.runtime(app).store
    old = datetime.now(timezone.utc) - timedelta(days=40)
    store.insert(
        [build_event("api_key_created") for _ in range(3)]
        + [build_event("api_key_created", created_at=old)]
        + [build_event("mystery_event")]
    )
    runner = app.test_cli_runner()
    rows = [
        json.loads(line)
        for line in runner.invoke(args=["audit", "event-types", "--json"]).output.splitlines()
    ]
    by_name = {row["event_type"]: row for row in rows}
    assert len(rows) == len(ORIGINAL_DESIGN) + 2
    assert by_name["api_key_created"] == {
        "event_type": "api_key_created",
        "category": "info",
        "resource_type": "api_key",
        "ocsf": "entity_management:create",
        "registered": True,
        "count_30_days": 3,
        "description": "An API key was created.",
    }
    assert by_name["mystery_event"]["registered"] is False and by_name["mystery_event"]["count_30_days"] == 1
    assert rows[-1]["event_type"] == "mystery_event"  # the unregistered ones come last
    table = runner.invoke(args=["audit", "event-types"]).output
    assert "permanent_ban_applied" in table and "(not registered)" in table
    assert EventType("report_exported", "info", "A report left the building.") in list(audit.vocabulary)
