"""AuditEvent: validation names the field and the rule; redaction; the queue entry round trip."""

from datetime import datetime, timezone

import orjson
import pytest

from flask_audit import AuditEvent, AuditValidationError
from flask_audit.events.event import REDACTED, build_event, decode_entry


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"event_type": ""}, "event_type", "required"),
        ({"event_type": None}, "event_type", "required"),
        ({"event_type": "x" * 101}, "event_type", "at most 100"),
        ({"event_type": "has space"}, "event_type", "letters, digits"),
        ({"event_type": "login\n"}, "event_type", "letters, digits"),
        ({"event_type": "ok", "event_category": "fatal"}, "event_category", "info, warning, critical"),
        ({"event_type": "ok", "metadata": {"when": object()}}, "metadata.when", "JSON-serialisable"),
        ({"event_type": "ok", "metadata": {(1, 2): "tuple key"}}, "metadata", "keys must be strings"),
        ({"event_type": "ok", "metadata": ["not", "a", "dict"]}, "metadata", "Mapping"),
        ({"event_type": "ok", "user_id": 1.5}, "user_id", "string or an integer"),
        ({"event_type": "ok", "resource_id": {"a": 1}}, "resource_id", "string or an integer"),
        ({"event_type": "ok", "created_at": datetime(2026, 1, 1)}, "created_at", "timezone-aware"),
    ],
)
def test_the_applications_mistakes_name_field_and_rule(kwargs, field, rule):
    """What only the application's code decides is refused at the call, with a clear error."""
    with pytest.raises(AuditValidationError) as info:
        build_event(**kwargs)
    assert info.value.field == field
    assert rule in info.value.rule
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(field)


@pytest.mark.parametrize(
    ("kwargs", "field", "stored"),
    [
        ({"description": "bad \ud800 surrogate"}, "description", "bad \ufffd surrogate"),
        ({"user_id": "\udfff"}, "user_id", "\ufffd"),
        ({"resource_type": "a\x00b"}, "resource_type", "a\ufffdb"),
        ({"resource_id": "r" * 300}, "resource_id", "r" * 255),
        ({"description": "d" * 2001}, "description", "d" * 2000),
        (
            {"description": "two\tlines\nkept, \x1b[31m not"},
            "description",
            "two\tlines\nkept, \ufffd[31m not",
        ),
        ({"user_agent": "curl\x00/8"}, "user_agent", "curl\ufffd/8"),
        ({"user_agent": "u" * 1000}, "user_agent", "u" * 512),
        ({"request_id": "r\nx"}, "request_id", "r\ufffdx"),
        ({"ip_address": "fe80::1%" + "z" * 300}, "ip_address", "fe80::1"),
        ({"ip_address": "999.1.1.1"}, "ip_address", None),
        ({"user_id": b"\xff\xfeuser"}, "user_id", "\ufffd\ufffduser"),
    ],
)
def test_what_a_client_may_send_is_repaired_and_recorded(kwargs, field, stored):
    """Client-influenced fields never cost the event: repaired, and listed under _sanitized."""
    event = build_event("ok", **kwargs)
    assert getattr(event, field) == stored
    assert event.metadata == {"_sanitized": [field]}
    assert AuditEvent.from_entry(event.to_entry()) == event


def test_metadata_is_repaired_where_json_or_postgres_would_refuse_it():
    loop: dict = {"name": "loop"}
    loop["self"] = loop
    deep: dict = {}
    node = deep
    for _ in range(200):
        node["d"] = {}
        node = node["d"]
    event = build_event(
        "ok",
        metadata={
            "nul": "a\x00b",
            "surrogate": "\ud800",
            "nan": float("nan"),
            "inf": float("-inf"),
            "huge": 2**70,
            "loop": loop,
            "deep": deep,
            "bytes": b"\xff",
            7: "int key",
            "_sanitized": "forged by a client",
        },
    )
    meta = event.metadata
    assert meta["nul"] == "a\ufffdb" and meta["surrogate"] == "\ufffd"
    assert meta["nan"] == "NaN" and meta["inf"] == "-Infinity" and meta["huge"] == str(2**70)
    assert meta["loop"] == {"name": "loop", "self": "[cycle]"}
    assert "[too deep]" in orjson.dumps(meta["deep"]).decode()
    assert meta["bytes"] == "\ufffd" and meta["7"] == "int key"
    assert set(meta["_sanitized"]) >= {
        "metadata.nul",
        "metadata.surrogate",
        "metadata.nan",
        "metadata.inf",
        "metadata.huge",
        "metadata.loop.self",
        "metadata._sanitized",
        "metadata.bytes",
    }
    assert AuditEvent.from_entry(event.to_entry()) == event


def test_oversized_metadata_is_replaced_by_a_note_not_refused():
    event = build_event("ok", metadata={"big": "x" * 20000}, max_metadata_bytes=16384)
    assert event.metadata["_sanitized"] == ["metadata"]
    assert "over the limit of 16384" in event.metadata["_truncated"]


def test_a_clean_event_carries_no_sanitized_key():
    event = build_event("ok", description="fine\twith tab\nand newline", metadata={"a": [1, "b"]})
    assert event.metadata == {"a": [1, "b"]}


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


def test_redaction_ignores_case_dashes_and_underscores_and_walks_every_container():
    from collections import OrderedDict, defaultdict

    from flask_audit.config import KEYS_BY_NAME

    keys = KEYS_BY_NAME["AUDIT_REDACT_KEYS"].default
    nested = defaultdict(list, {"apiKey": "k1"})
    event = build_event(
        "ok",
        metadata={
            "apiKey": "k1",
            "api-key": "k2",
            "X-Api-Key": "k3",
            "ordered": OrderedDict(pwd="p"),
            "default": nested,
            "headers": [("Authorization", "Bearer t"), ("Accept", "*/*"), ["Cookie", "sid=1"]],
            "tuple": ({"private_key": "pem"},),
            "Passphrase": "x",
            "credentials": "c",
            "session": "s",
        },
        redact_keys=keys,
    )
    meta = event.metadata
    assert meta["apiKey"] == meta["api-key"] == meta["X-Api-Key"] == REDACTED
    assert meta["ordered"] == {"pwd": REDACTED}
    assert meta["default"] == {"apiKey": REDACTED}
    assert meta["headers"] == [["Authorization", REDACTED], ["Accept", "*/*"], ["Cookie", REDACTED]]
    assert meta["tuple"] == [{"private_key": REDACTED}]
    assert meta["Passphrase"] == meta["credentials"] == meta["session"] == REDACTED
    assert "k1" not in event.to_entry().decode()


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
    assert raw.startswith(b"2\t")  # entry version 2: one line of COPY text
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

    from flask_audit.events.event import new_event_id

    first = new_event_id()
    time.sleep(0.002)
    second = new_event_id()
    for value in (first, second):
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert first < second
    assert abs(int(first.replace("-", "")[:12], 16) - time.time() * 1000) < 5000


def test_event_ids_increase_strictly_within_a_millisecond_and_across_threads():
    import threading

    from flask_audit.events.event import new_event_id

    made: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        for _ in range(20000):
            out.append(new_event_id())

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in made:
        assert out == sorted(out)  # each thread sees its ids in order
    every = [i for out in made for i in out]
    assert len(set(every)) == len(every) == 80000
    single = [new_event_id() for _ in range(10000)]  # far more than one per millisecond
    assert single == sorted(single) and len(set(single)) == len(single)


def test_the_successor_of_an_id_carries_into_the_timestamp_when_its_random_bits_are_full():
    import uuid

    from flask_audit.events.ids import _successor

    millis = 0x01A21C3B4A2F
    full = millis << 80 | 0x7 << 76 | 0xFFF << 64 | 0x2 << 62 | (1 << 62) - 1
    following = uuid.UUID(int=_successor(full))
    assert following.int > full and following.version == 7 and following.variant == uuid.RFC_4122
    assert following.int >> 80 == millis + 1
    low = millis << 80 | 0x7 << 76 | 0x2 << 62 | 5
    assert _successor(low) == low + 1


def test_log_and_critical_take_a_keyword_per_declared_client_field():
    """The public signatures are written out for type checkers; they must follow the declaration."""
    import inspect

    from flask_audit import FlaskAudit
    from flask_audit.events import schema

    client = {f.name for f in schema.FIELDS if f.source == schema.CLIENT}
    code = {f.name for f in schema.FIELDS if f.source == schema.CODE} - {"event_type"}
    log = set(inspect.signature(FlaskAudit.log).parameters) - {"self", "event_type"}
    critical = set(inspect.signature(FlaskAudit.critical).parameters) - {"self", "event_type"}
    assert log == client | code
    assert critical == client | code - {"event_category"}  # always critical


def test_log_hands_every_declared_client_field_to_the_event(make_app, fake_redis):
    """log writes its fields out by name (cheaper than gathering them from locals()): each one
    declared must reach the queue entry, inside a request and out of one."""

    from flask_audit.events import schema

    app, audit = make_app(redis_client=fake_redis)
    given = {f.name: f"{f.name}-value" for f in schema.FIELDS if f.source == schema.CLIENT}
    given.update(ip_address="203.0.113.7", metadata={"plan": "pro"})
    runtime = audit.runtime(app)
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "198.51.100.1"}):
        in_request = audit.log("field_check", **given)
    with app.app_context():
        outside = audit.log("field_check", **given)
    entries = [decode_entry(raw) for raw in fake_redis.lrange(runtime.queue.queue_key, 0, -1)]
    assert {entry["event_id"] for entry in entries} == {in_request, outside}
    for entry in entries:
        assert {name: entry[name] for name in given} == given


def test_the_model_the_ddl_and_the_copy_columns_follow_the_declaration():
    from flask_audit.events import schema
    from flask_audit.storage import pgcopy
    from flask_audit.storage.partitions import partitioned_schema
    from flask_audit.storage.query import to_dict
    from flask_audit.storage.store import AuditLog

    assert AuditLog._meta.sorted_field_names == ["id", *schema.NAMES]
    ddl = partitioned_schema()
    assert all(f.column_sql(postgres=True) in ddl for f in schema.FIELDS)
    assert len(schema.NAMES) - 1 == pgcopy.TABS
    event = build_event("x", user_id="u", metadata={"a": 1})
    row = AuditLog(id=1, **event.to_row())
    assert list(to_dict(row)) == ["id", *schema.NAMES]


def _entry(**changes):
    import json as _json

    from flask_audit.events.event import build_event as _build

    data = {**decode_entry(_build("x", user_id="u").to_entry()), "v": 1}  # a version-1 (JSON) entry
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key)
        else:
            data[key] = value
    return _json.dumps(data).encode()


_DROP = object()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[1, 2]", "entry: must be a JSON object"),
        (b"{bad", None),
        (_entry(v=99), "v: entry version 99 is not understood"),
        (_entry(v="1"), "v: entry version '1' is not understood"),
        (_entry(colour="red"), "colour: is not an audit event field"),
        (_entry(created_at="2026-01-01T00:00:00"), "created_at: must be timezone-aware"),
        (_entry(created_at="yesterday"), "created_at: must be an ISO 8601 timestamp"),
        (_entry(event_id="not-a-uuid"), "event_id: must be a UUID"),
        (_entry(event_id="0" * 36), "event_id: must be a UUID"),  # the length, not the dashes
        (_entry(event_id="0-0-0-0-0"), "event_id: must be a UUID"),  # the dashes, not the length
        (_entry(outcome="partial"), "outcome: must be one of success, failure, denied"),
        (_entry(event_type=""), "event_type: is required: a non-empty string without NUL characters"),
        (_entry(event_type="a\u0000b"), "event_type: is required: a non-empty string without NUL characters"),
        (_entry(event_category="fatal"), "event_category: must be one of info, warning, critical"),
        (_entry(user_id=42), "user_id: must be a string without NUL characters"),
        (_entry(user_id="a\u0000b"), "user_id: must be a string without NUL characters"),
        (_entry(metadata=[1]), "metadata: must be a JSON object (a dict)"),
    ],
)
def test_what_the_drain_refuses_and_the_reason_the_failed_list_shows(raw, message):
    """Each refusal, word for word: the failed list shows it to the operator who must fix it."""
    from flask_audit.events.event import decode_entry

    with pytest.raises(AuditValidationError) as err:
        decode_entry(raw)
    if message is None:
        assert str(err.value).startswith("entry: is not valid JSON (")
    else:
        assert str(err.value) == message


def test_an_older_entry_is_repaired_as_a_producer_would_now():
    """0.1.0 entries lacked event_category, could be longer and kept IPv6 zone ids."""
    from flask_audit.events.event import decode_entry

    row = decode_entry(
        _entry(
            event_category=_DROP,
            user_id="u" * 300,
            description="d" * 2000,
            ip_address="fe80::1%eth0",
            metadata={"k": 1},
        )
    )
    assert row["event_category"] == "info"
    assert row["user_id"] == "u" * 255 and row["description"] == "d" * 2000
    assert row["ip_address"] == "fe80::1" and row["metadata"] == {"k": 1}
    long_v6 = "2001:0db8:0000:0000:0000:0000:0000:0001"  # 39 characters: kept as written
    assert decode_entry(_entry(ip_address=long_v6))["ip_address"] == long_v6
    assert decode_entry(_entry(ip_address="2001:0db8:0000:0000:0000:0000:0000:00001"))["ip_address"] is None


def test_build_events_refusals_name_the_field_and_the_rule_word_for_word():
    from datetime import datetime

    with pytest.raises(TypeError) as err:
        build_event("x", zebra=1, colour=2)
    assert str(err.value) == "build_event() got an unexpected keyword argument 'colour'"
    with pytest.raises(AuditValidationError) as err:
        build_event("x", event_category="fatal")
    assert str(err.value) == "event_category: must be one of info, warning, critical"
    with pytest.raises(AuditValidationError) as err:
        build_event("x", created_at=datetime(2026, 1, 1))
    assert str(err.value) == "created_at: must be a timezone-aware datetime"
    with pytest.raises(AuditValidationError) as err:
        build_event("x", outcome="partial")
    assert str(err.value) == "outcome: must be one of success, failure, denied"


@pytest.mark.parametrize(
    ("event_type", "message"),
    [
        ("", "event_type: is required and must be a non-empty string"),
        (None, "event_type: is required and must be a non-empty string"),
        (7, "event_type: is required and must be a non-empty string"),
        ("x" * 101, "event_type: must be at most 100 characters"),
        ("api key", "event_type: may hold only letters, digits and _ . : -"),
        ("a\nb", "event_type: may hold only letters, digits and _ . : -"),
    ],
)
def test_event_type_refusals_word_for_word(event_type, message):
    with pytest.raises(AuditValidationError) as err:
        build_event(event_type)
    assert str(err.value) == message


def test_event_type_limits_are_inclusive():
    assert build_event("x" * 100).event_type == "x" * 100
    assert build_event("a_b.c:d-E9").event_type == "a_b.c:d-E9"


def test_created_at_must_be_an_aware_datetime_and_is_stored_in_utc():
    from datetime import timedelta

    with pytest.raises(AuditValidationError) as err:
        build_event("x", created_at="2026-01-01T00:00:00+00:00")
    assert str(err.value) == "created_at: must be a timezone-aware datetime"
    paris = timezone(timedelta(hours=1))
    event = build_event("x", created_at=datetime(2026, 1, 1, 13, 0, tzinfo=paris))
    assert event.created_at == datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert event.created_at.utcoffset() == timedelta(0)


def test_a_given_event_id_is_kept_and_an_empty_one_replaced():
    given = "0190f5c2-0000-7000-8000-000000000001"
    assert build_event("x", event_id=given).event_id == given
    assert len(build_event("x", event_id="").event_id) == 36


def test_metadata_that_is_not_a_mapping_is_refused_and_a_mapping_is_kept():
    from types import MappingProxyType

    with pytest.raises(AuditValidationError) as err:
        build_event("x", metadata=[("a", 1)])
    assert str(err.value) == "metadata: must be a JSON object (a dict or other Mapping)"
    assert build_event("x", metadata=MappingProxyType({"a": 1})).metadata == {"a": 1}
    assert build_event("x", metadata={}).metadata == {}


def test_metadata_at_the_byte_limit_is_kept_and_one_byte_over_is_replaced():
    import orjson

    metadata = {"k": "x" * 100}
    size = len(orjson.dumps(metadata))
    assert build_event("x", metadata=metadata, max_metadata_bytes=size).metadata == metadata
    over = build_event("x", metadata=metadata, max_metadata_bytes=size - 1).metadata
    assert over == {
        "_truncated": f"metadata was {size} bytes as JSON, over the limit of {size - 1}",
        "_sanitized": ["metadata"],
    }
    # the note keeps the other repairs too
    over = build_event("x", metadata=metadata, description="a\x00", max_metadata_bytes=size - 1).metadata
    assert over["_sanitized"] == ["description", "metadata"]


def test_the_queue_entry_decodes_to_the_row_build_event_made():
    from flask_audit.events.event import decode_entry

    event = build_event("x", user_id="u", outcome="denied", metadata={"a": [1]}, ip_address="::1")
    row = decode_entry(event.to_entry())
    assert row["created_at"] == event.created_at.isoformat()
    assert {k: v for k, v in row.items() if k != "created_at"} == {
        k: v for k, v in event.to_row().items() if k != "created_at"
    }


@pytest.mark.parametrize("version", [True, 2, 1.0, None])
def test_only_entry_versions_up_to_this_one_are_understood(version):
    from flask_audit.events.event import decode_entry

    with pytest.raises(AuditValidationError) as err:
        decode_entry(_entry(v=version))
    assert str(err.value) == f"v: entry version {version!r} is not understood"


def test_an_entry_of_version_zero_or_one_is_read_with_the_defaults_filled_in():
    from flask_audit.events.event import ENTRY_DEFAULTS, decode_entry

    for version in (0, 1):
        row = decode_entry(_entry(v=version, outcome=_DROP, event_category=_DROP))
        assert row["outcome"] == "success" and row["event_category"] == "info"
    assert ENTRY_DEFAULTS["outcome"] == "success"


def test_text_over_its_limit_in_an_entry_is_cut_to_the_limit_exactly():
    from flask_audit.events.event import MAX_LENGTHS, decode_entry

    limit = MAX_LENGTHS["request_id"]
    assert decode_entry(_entry(request_id="r" * limit))["request_id"] == "r" * limit
    assert decode_entry(_entry(request_id="r" * (limit + 1)))["request_id"] == "r" * limit


def test_the_default_metadata_limit_is_16384_bytes():
    import orjson

    def sized(n: int) -> dict:
        return {"k": "x" * (n - len(orjson.dumps({"k": ""})))}

    assert build_event("x", metadata=sized(16384)).metadata == sized(16384)
    assert "_truncated" in build_event("x", metadata=sized(16385)).metadata


def test_an_event_read_back_from_its_entry_gives_the_same_entry():
    event = build_event("x", user_id="u", metadata={"a": [1, 2]}, ip_address="::1")
    from flask_audit.events.event import decode_entry

    again = AuditEvent.from_entry(event.to_entry())
    assert decode_entry(again.to_entry()) == decode_entry(event.to_entry())  # rebuilt from the row
    assert again.to_entry() is again.to_entry()  # and made once


def test_event_types_are_remembered_once_checked_and_the_memory_is_bounded(monkeypatch):
    from flask_audit.events import event as event_module

    monkeypatch.setattr(event_module, "_checked_types", set())
    monkeypatch.setattr(event_module, "MAX_CHECKED_TYPES", 2)
    for name in ("first", "second", "third"):
        assert build_event(name).event_type == name
    assert event_module._checked_types == {"first", "second"}
    for bad in ("has space", ["first"], "x" * 101):  # refused whether or not the memory is full
        with pytest.raises(AuditValidationError):
            build_event(bad)
    assert event_module._checked_types == {"first", "second"}


def test_log_s_builder_from_a_dict_makes_the_event_build_event_makes():
    from flask_audit.events.event import event_from_fields

    moment = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    fields = {
        "user_id": 42,
        "resource_id": "r" * 300,
        "description": "line\x1b[2J",
        "metadata": {"password": "p", "n": float("nan")},
        "ip_address": "fe80::1%eth0",
        "user_agent": "agent",
    }
    common = {"event_id": "0190f5c2-0000-7000-8000-000000000001", "created_at": moment}
    built = build_event(
        "x", event_category="warning", outcome="denied", redact_keys=("password",), **common, **fields
    )
    from_dict = event_from_fields("x", "warning", "denied", dict(fields), redact_keys=("password",), **common)
    assert from_dict.to_entry() == built.to_entry()
    assert from_dict.to_row() == built.to_row()
    assert from_dict.metadata["_sanitized"]  # the repairs were made, and noted, on both
