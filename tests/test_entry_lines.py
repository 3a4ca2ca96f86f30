"""Version-2 queue entries (one COPY line each): what a line holds reads back exactly, the drain's
bulk checks refuse what a JSON entry's decoding refuses, and a batch copied as it is stores the
same rows as the same batch decoded entry by entry."""

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_audit.errors import AuditValidationError
from flask_audit.events import line
from flask_audit.events.event import build_event, decode_entry
from flask_audit.pipeline.drain import Drainer
from flask_audit.storage import pgcopy

HOSTILE = 'tab\there\nnewline\rreturn \\ backslash \\N literal é ✓ "quoted"'


def _event(**fields):
    return build_event("report.exported", **fields)


def _expected(event):
    row = event.to_row()
    row["created_at"] = row["created_at"].isoformat()
    return row


def test_a_line_reads_back_every_field_a_json_entry_held():
    event = _event(
        user_id="u\\1",
        resource_type="report",
        resource_id="r\t7",
        description=HOSTILE,
        metadata={"q": HOSTILE, "n": [1, 2.5, None, True], "nested": {"\\": "\t"}},
        ip_address="::1",
        user_agent="agent \\N",
        request_id="req-1",
        tenant_id="acme",
        outcome="denied",
        event_category="warning",
    )
    entry = event.to_entry()
    assert entry.startswith(b"2\t") and b"\n" not in entry and b"\r" not in entry
    assert entry.count(b"\t") == line.TABS
    assert decode_entry(entry) == _expected(event)


@settings(max_examples=200, deadline=None)
@given(
    description=st.one_of(st.none(), st.text(max_size=60)),
    user_agent=st.one_of(st.none(), st.text(max_size=40)),
    metadata=st.one_of(st.none(), st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=3)),
)
def test_any_repaired_event_survives_its_line(description, user_agent, metadata):
    event = _event(description=description, user_agent=user_agent, metadata=metadata)
    assert decode_entry(event.to_entry()) == _expected(event)


def test_json_entries_of_older_releases_still_decode():
    event = _event(user_id="7", metadata={"a": 1})
    row = _expected(event)
    old = json.dumps({**row, "v": 1}).encode()
    assert decode_entry(old) == row


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        (b"3\tanything", "v", "entry version 3 is not understood"),
        (b"2\tonly\ttwo", "entry", "has 3 cells; a version-2 line has 15"),
        (b"2\t" + b"\t".join([b"x"] * 13) + b"\\b\tx", "entry", "holds the escape"),
        (b"2\t" + b"\t".join([b"x"] * 13) + b"\\\tx", "entry", "holds the escape"),
    ],
)
def test_a_line_that_no_producer_writes_is_refused_naming_the_rule(raw, field, rule):
    with pytest.raises(AuditValidationError) as caught:
        decode_entry(raw)
    assert caught.value.field == field and rule in str(caught.value)


def _cells(event):
    return event.to_entry().split(b"\t")


def _with(event, name, value):
    cells = _cells(event)
    cells[line.NAMES.index(name) + 1] = value
    return b"\t".join(cells)


def test_a_batch_of_lines_becomes_the_copy_text_the_decoded_rows_would_give():
    events = [_event(user_id=str(i), description=HOSTILE, metadata={"q": HOSTILE}) for i in range(5)]
    events.append(_event(outcome="failure"))
    entries = [e.to_entry() for e in events]
    body, outcomes = line.checked_batch(entries)
    assert body.decode() == pgcopy.copy_text([decode_entry(e) for e in entries]).getvalue()
    assert outcomes == Counter({"success": 5, "failure": 1})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("event_id", b"not-a-uuid"),
        ("created_at", b"2026-11-28T10:00:00.000001"),  # no offset: the session's zone would be guessed
        ("created_at", b"2026-11-28T10:00:00.000001+01:00"),
        ("event_type", b""),
        ("event_type", b"\\N"),
        ("event_category", b"fatal"),
        ("outcome", b"maybe"),
        ("description", b"d" * 2001),
        ("ip_address", b"fe80::1%eth0"),
        ("metadata", b"[1, 2]"),
        ("metadata", b'{"big": 1e400}'),  # jsonb takes it, the sealer could not read it back
        ("metadata", b'{"a": "\\\\q"}'),  # an escape COPY would turn into a bare backslash
        ("user_id", b"raw\rreturn"),
    ],
)
def test_the_bulk_checks_refuse_what_decoding_an_entry_refuses_or_repairs(name, value):
    good = [_event(user_id=str(i)).to_entry() for i in range(3)]
    bad = _with(_event(), name, value)
    assert line.checked_batch([*good, bad]) is None
    assert line.checked_batch(good) is not None


def test_the_bulk_checks_refuse_a_line_with_a_cell_too_many_or_a_newline_inside():
    event = _event()
    assert line.checked_batch([event.to_entry() + b"\textra"]) is None
    assert line.checked_batch([event.to_entry()[:-3] + b"\n" + event.to_entry()]) is None
    assert line.checked_batch([b"2\t\\."]) is None  # COPY's end of data, alone on a line


def test_a_json_entry_sends_its_batch_entry_by_entry():
    event = _event()
    old = json.dumps({**_expected(event), "v": 1}).encode()
    assert line.checked_batch([_event().to_entry(), old]) is None


# -- on the real PostgreSQL and Redis -------------------------------------------------------------


@pytest.fixture
def pg_pipeline(make_app, real_redis_client, key_prefix, pg_url):
    app, audit = make_app(
        redis_client=real_redis_client, AUDIT_KEY_PREFIX=key_prefix, AUDIT_DATABASE_URL=pg_url
    )
    runtime = audit.runtime(app)
    return runtime, Drainer(runtime.queue, runtime.store)


def _stored(runtime):
    columns = ", ".join(f"{name}::text" if name in ("event_id", "metadata") else name for name in line.NAMES)
    with runtime.store.translate():
        cursor = runtime.store.database.execute_sql(f"SELECT {columns} FROM audit_logs ORDER BY id")
        return [dict(zip(line.NAMES, record, strict=True)) for record in cursor.fetchall()]


def _as_stored(event):
    row = event.to_row()
    row["event_id"] = str(row["event_id"])
    row["metadata"] = None if row["metadata"] is None else json.dumps(row["metadata"], ensure_ascii=False)
    return row


def test_a_batch_of_lines_is_stored_exactly_as_its_events_hold(pg_pipeline):
    runtime, drainer = pg_pipeline
    events = [
        _event(user_id=str(i), description=HOSTILE, metadata={"q": HOSTILE, "i": i}, tenant_id="t")
        for i in range(20)
    ]
    runtime.queue.push([e.to_entry() for e in events])
    result = drainer.drain_once(100)
    assert (result.claimed, result.inserted, result.failed) == (20, 20, 0)
    stored = _stored(runtime)
    for row, event in zip(stored, events, strict=True):
        expected = _as_stored(event)
        assert row["created_at"] == event.created_at
        assert json.loads(row.pop("metadata")) == json.loads(expected.pop("metadata"))
        assert {k: v for k, v in row.items() if k != "created_at"} == {
            k: v for k, v in expected.items() if k != "created_at"
        }


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("event_category", b"fatal", "event_category"),  # refused by the bulk checks
        ("event_id", b"z" * 8 + b"-zzzz-zzzz-zzzz-" + b"z" * 12, "uuid"),  # refused by PostgreSQL
        ("resource_type", b"r" * 101, None),  # too long for its column: cut, as an old entry is
    ],
)
def test_one_bad_line_is_filed_or_repaired_and_the_rest_of_its_batch_lands(pg_pipeline, name, value, reason):
    runtime, drainer = pg_pipeline
    good = [_event(user_id=str(i)) for i in range(6)]
    bad = _with(_event(user_id="bad"), name, value)
    runtime.queue.push([*(e.to_entry() for e in good[:3]), bad, *(e.to_entry() for e in good[3:])])
    result = drainer.drain_once(100)
    stored_users = [row["user_id"] for row in _stored(runtime)]
    failed = [json.loads(raw) for raw in runtime.queue.client.lrange(runtime.queue.failed_key, 0, -1)]
    if reason is None:
        assert (result.inserted, result.failed) == (7, 0)
        assert sorted(stored_users) == sorted([*map(str, range(6)), "bad"])
        assert [r["resource_type"] for r in _stored(runtime) if r["user_id"] == "bad"] == ["r" * 100]
    else:
        assert (result.inserted, result.failed) == (6, 1)
        assert sorted(stored_users) == sorted(map(str, range(6)))
        assert reason in failed[0]["error"].lower() and failed[0]["entry"] == bad.decode()
    assert runtime.queue.inflight_count() == 0


def test_a_batch_of_old_and_new_entries_lands_whole(pg_pipeline):
    runtime, drainer = pg_pipeline
    new = [_event(user_id=f"n{i}") for i in range(3)]
    old = [json.dumps({**_expected(e), "v": 1}).encode() for e in (_event(user_id=f"o{i}") for i in range(3))]
    runtime.queue.push([new[0].to_entry(), old[0], new[1].to_entry(), *old[1:], new[2].to_entry()])
    result = drainer.drain_once(100)
    assert (result.inserted, result.failed) == (6, 0)
    assert sorted(r["user_id"] for r in _stored(runtime)) == ["n0", "n1", "n2", "o0", "o1", "o2"]


def test_a_redelivered_batch_of_lines_stores_nothing_twice(pg_pipeline):
    runtime, drainer = pg_pipeline
    events = [_event(user_id=str(i)) for i in range(8)]
    runtime.store.insert(events[:5])  # as if a worker had stored part of it and died before settling
    runtime.queue.push([e.to_entry() for e in events])
    result = drainer.drain_once(100)
    assert (result.claimed, result.inserted, result.failed) == (8, 3, 0)
    assert sorted(r["user_id"] for r in _stored(runtime)) == sorted(map(str, range(8)))


def test_copy_stops_at_an_end_of_data_line_and_nothing_is_stored(pg_pipeline):
    runtime, _ = pg_pipeline
    first, second = (line.checked_batch([_event().to_entry()])[0] for _ in range(2))
    with pytest.raises(Exception, match="COPY took 1 of 2 lines"):
        runtime.store.write_lines(first + b"\\.\n" + second, 2)
    assert runtime.store.count() == 0  # rolled back whole
    assert runtime.store.write_lines(first, 1) == (1, 1)  # and the connection still works
