"""The query API: access, filters, keyset paging stable under inserts, one event by id."""

from datetime import datetime, timedelta, timezone

import pytest

from flask_audit.events.event import build_event

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(make_app, fake_redis, any_db_url):
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=any_db_url, AUDIT_API_TOKEN=TOKEN)
    store = audit.runtime(app).store
    base = datetime(2026, 5, 1, tzinfo=timezone.utc)
    events = [
        build_event(
            "login" if i % 2 else "api_key_created",
            user_id=f"u{i % 4}",
            resource_type="api_key",
            resource_id=str(i),
            created_at=base + timedelta(minutes=i // 2),
        )  # pairs share a time
        for i in range(60)
    ]
    store.insert(events)
    return app, store, events


def test_off_without_token_or_authorize(make_app, fake_redis):
    app, _ = make_app(redis_client=fake_redis)
    assert app.test_client().get("/api/v1/audit-logs").status_code == 404


def test_wrong_or_missing_credentials_get_401_without_detail(api):
    app, _, _ = api
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        response = client.get("/api/v1/audit-logs", headers=headers)
        assert response.status_code == 401
        assert TOKEN not in response.get_data(as_text=True)


def test_authorize_callback(make_app, fake_redis):
    from flask import Flask

    from flask_audit import FlaskAudit

    app = Flask("authz")
    app.config.update(AUDIT_DATABASE_URL="sqlite:///:memory:")
    FlaskAudit(app, redis=fake_redis, authorize=lambda request: request.headers.get("X-Role") == "auditor")
    app.extensions["audit"].runtime(app).store.create_schema()
    client = app.test_client()
    assert client.get("/api/v1/audit-logs").status_code == 401
    assert client.get("/api/v1/audit-logs", headers={"X-Role": "auditor"}).status_code == 200


def test_pages_newest_first_through_the_whole_history(api):
    app, store, events = api
    client = app.test_client()
    seen, cursor = [], None
    while True:
        url = "/api/v1/audit-logs?user_id=u1&limit=4" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=AUTH).json
        seen += [item["event_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # A row inserted meanwhile (newer than everything) does not shift the pages.
        store.insert([build_event("login", user_id="u1")])
    expected = [
        e.event_id
        for e in sorted((e for e in events if e.user_id == "u1"), key=lambda e: e.created_at, reverse=True)
    ]
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen)) == 15
    times = [store.model.get(store.model.event_id == s).created_at for s in seen]
    assert times == sorted(times, reverse=True)


def test_filters_combine(api):
    app, _, events = api
    url = "/api/v1/audit-logs?event_type=login&resource_type=api_key&since=2026-05-01T00:10:00Z&until=2026-05-01T00:20:00"
    items = app.test_client().get(url, headers=AUTH).json["items"]
    expected = {e.event_id for e in events if e.event_type == "login" and 10 <= (e.created_at.minute) < 20}
    assert {i["event_id"] for i in items} == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("event_category=fatal", "event_category"),
        ("cursor=garbage!", "cursor"),
        ("colour=red", "colour"),
    ],
)
def test_bad_filters_get_400_naming_the_filter(api, query, field):
    app, _, _ = api
    response = app.test_client().get(f"/api/v1/audit-logs?{query}", headers=AUTH)
    assert response.status_code == 400
    assert response.json["field"] == field


def test_one_event_by_id(api):
    app, _, events = api
    client = app.test_client()
    body = client.get(f"/api/v1/audit-logs/{events[5].event_id}", headers=AUTH).json
    assert body["event_id"] == events[5].event_id and body["resource_id"] == "5"
    assert (
        client.get("/api/v1/audit-logs/00000000-0000-0000-0000-000000000000", headers=AUTH).status_code == 404
    )
    assert client.get("/api/v1/audit-logs/not-a-uuid", headers=AUTH).status_code == 400


def _cursor(payload: str) -> str:
    import base64

    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=²", "limit"),
        ("limit=٣", "limit"),
        ("limit=99999999999999999999", "limit"),
        ("cursor=" + _cursor('["2026-01-01T00:00:00+00:00", Infinity]'), "cursor"),
        ("cursor=" + _cursor('["0001-01-01T00:00:00+05:00", 1]'), "cursor"),
        ("cursor=" + _cursor('["0000-01-01T00:00:00", 1]'), "cursor"),
        ("cursor=" + _cursor('["2026-01-01T00:00:00", 1]'), "cursor"),
        ("cursor=" + _cursor('["2026-01-01T00:00:00+00:00", 1e400]'), "cursor"),
        ("cursor=" + _cursor('["2026-01-01T00:00:00+00:00", 99999999999999999999]'), "cursor"),
        ("cursor=" + _cursor('{"a": 1}'), "cursor"),
        ("cursor=%F0%9F%98%80", "cursor"),
        ("user_id=a%00b", "user_id"),
        ("resource_id=%1b%5b31m", "resource_id"),
        ("since=0001-01-01T00:00:00%2B05:00", "since"),
        ("until=9999-12-31T23:59:59-05:00", "until"),
    ],
)
def test_every_malformed_parameter_is_a_400_that_names_it(api, query, field):
    app, _, _ = api
    response = app.test_client().get(f"/api/v1/audit-logs?{query}", headers=AUTH)
    assert response.status_code == 400, response.data
    assert response.json["field"] == field


def test_a_database_outage_is_a_503_without_details(make_app, fake_redis):
    app, _ = make_app(
        redis_client=fake_redis,
        AUDIT_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none",
        AUDIT_API_TOKEN=TOKEN,
        create_schema=False,
    )
    client = app.test_client()
    for path in ("/api/v1/audit-logs", "/api/v1/audit-logs/01a21c3b-4a2f-792e-a98c-eb6501cd1fac"):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 503
        assert b"127.0.0.1" not in response.data and b":1" not in response.data
