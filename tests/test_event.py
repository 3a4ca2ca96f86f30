"""AuditEvent: validation names the field and the rule; redaction; the queue entry round trip."""

from datetime import datetime, timezone

import pytest

from flask_audit import AuditEvent, AuditValidationError
from flask_audit.event import REDACTED, build_event


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"event_type": ""}, "event_type", "required"),
        ({"event_type": None}, "event_type", "required"),
        ({"event_type": "x" * 101}, "event_type", "at most 100"),
        ({"event_type": "has space"}, "event_type", "letters, digits"),
        ({"event_type": "ok", "event_category": "fatal"}, "event_category", "info, warning, critical"),
        ({"event_type": "ok", "metadata": {"when": object()}}, "metadata", "JSON-serialisable"),
        ({"event_type": "ok", "metadata": {"nan": float("nan")}}, "metadata", "JSON-serialisable"),
        ({"event_type": "ok", "metadata": ["not", "a", "dict"]}, "metadata", "dict"),
        ({"event_type": "ok", "metadata": {"big": "x" * 20000}}, "metadata", "at most 16384 bytes"),
        ({"event_type": "ok", "metadata": {"nul": "a\x00b"}}, "metadata", "NUL"),
        ({"event_type": "ok", "description": "d" * 2001}, "description", "at most 2000"),
        ({"event_type": "ok", "user_id": 1.5}, "user_id", "string or an integer"),
        ({"event_type": "ok", "resource_id": "a\x00"}, "resource_id", "NUL"),
        ({"event_type": "ok", "ip_address": "999.1.1.1"}, "ip_address", "IPv4 or IPv6"),
        ({"event_type": "ok", "created_at": datetime(2026, 1, 1)}, "created_at", "timezone-aware"),
    ],
)
def test_bad_input_names_field_and_rule(kwargs, field, rule):
    with pytest.raises(AuditValidationError) as info:
        build_event(**kwargs)
    assert info.value.field == field
    assert rule in info.value.rule
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(field)


def test_event_is_stamped_with_uuid_and_utc_time():
    before = datetime.now(timezone.utc)
    event = build_event("api_key_created", user_id=7, resource_id=12)
    assert len(event.event_id) == 36 and event.event_id.count("-") == 4
    assert before <= event.created_at <= datetime.now(timezone.utc)
    assert event.created_at.tzinfo is timezone.utc
    assert event.user_id == "7" and event.resource_id == "12"
    assert event.event_category == "info"


def test_sensitive_keys_are_redacted_at_any_depth():
    event = build_event(
        "api_key_created",
        metadata={"key_name": "ci", "API_KEY": "s3cr3t", "nested": [{"password": "p", "ok": 1}]},
        redact_keys=("password", "api_key"),
    )
    assert event.metadata == {
        "key_name": "ci",
        "API_KEY": REDACTED,
        "nested": [{"password": REDACTED, "ok": 1}],
    }


def test_client_controlled_fields_are_cut_not_refused():
    event = build_event("x", user_agent="u" * 1000, request_id="r" * 500)
    assert len(event.user_agent) == 512 and len(event.request_id) == 128


def test_entry_round_trip_keeps_every_field():
    event = build_event(
        "usage_warning_80_percent",
        event_category="warning",
        user_id="u1",
        resource_type="usage_quota",
        description="User reached 80% of monthly quota",
        metadata={"current_usage": 8000, "quota_limit": 10000, "percentage": 80, "ünï": "çødé"},
        ip_address="2001:db8::1",
        user_agent="curl/8",
        request_id="req-1",
    )
    raw = event.to_entry()
    assert b'"v":1' in raw
    assert AuditEvent.from_entry(raw) == event


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"not json", "entry"),
        (b"[1,2]", "entry"),
        (b'{"v":99,"event_type":"x"}', "v"),
        (b'{"event_type":"x"}', "v"),
        (b'{"v":1,"event_type":"x","created_at":"2026-01-01T00:00:00+00:00","event_id":"nope"}', "event_id"),
        (b'{"v":1,"event_type":"x","created_at":"yesterday","event_id":"x"}', "created_at"),
        (b'{"v":1,"bogus":1}', "bogus"),
    ],
)
def test_bad_entries_are_refused_with_the_field(raw, field):
    with pytest.raises(AuditValidationError) as info:
        AuditEvent.from_entry(raw)
    assert info.value.field == field


def test_entries_with_nul_characters_are_refused_before_the_database():
    event = build_event("x")
    row = event.to_row() | {"created_at": event.created_at.isoformat(), "v": 1, "description": "a\u0000b"}
    import orjson

    with pytest.raises(AuditValidationError) as info:
        AuditEvent.from_entry(orjson.dumps(row))
    assert info.value.field == "description"


def test_event_ids_are_uuid7_and_sort_by_time():
    import time
    import uuid

    from flask_audit.event import new_event_id

    first = new_event_id()
    time.sleep(0.002)
    second = new_event_id()
    for value in (first, second):
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert first < second
    assert abs(int(first.replace("-", "")[:12], 16) - time.time() * 1000) < 5000
