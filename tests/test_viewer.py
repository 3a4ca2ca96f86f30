"""The viewer over HTTP: the token exchange, the cookie, the headers, tenant scoping of the page
and of the API it calls, the streamed download and the free-text search."""

from __future__ import annotations

import csv
import io
import time

import pytest

from flask_audit.pipeline.drain import Drainer
from flask_audit.viewer import tokens


@pytest.fixture
def viewer(make_app, fake_redis):
    """An app with the API on, a secret for viewer tokens, and events of two tenants."""
    app, audit = make_app(
        redis_client=fake_redis, AUDIT_API_TOKEN="api-token", AUDIT_VIEWER_SECRET="v-secret"
    )
    runtime = audit.runtime(app)
    with app.app_context():
        for i in range(6):
            audit.log(
                "invoice_paid",
                user_id=f"u{i}",
                tenant_id="acme" if i % 2 else "globex",
                description=f'=HYPERLINK("http://x") invoice {i}',
            )
    Drainer(runtime.queue, runtime.store).drain_all(100)
    return app, audit


def test_a_token_in_the_address_becomes_an_httponly_cookie_and_leaves_the_address(viewer):
    app, audit = viewer
    client = app.test_client()
    response = client.get("/audit/?token=api-token&user_id=u1")
    assert response.status_code == 303
    assert response.headers["Location"] == "/audit/?user_id=u1"  # the filters stay, the token goes
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("audit_viewer=") and "api-token" not in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    page = client.get("/audit/?user_id=u1")
    assert page.status_code == 200 and b'data-api="/api/v1/audit-logs"' in page.data
    assert client.get("/api/v1/audit-logs").status_code == 200  # the cookie opens the API too


def test_every_viewer_response_forbids_inline_script_referrers_caching_and_framing(viewer):
    app, audit = viewer
    client = app.test_client()
    client.get("/audit/?token=api-token")
    for path in ("/audit/", "/audit/events/00000000-0000-0000-0000-000000000000", "/audit/static/viewer.js"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    page = client.get("/audit/").get_data(as_text=True)
    assert "<script>" not in page and " on" not in page.split("<body", 1)[1].split(">", 1)[0]


def test_framing_is_allowed_only_to_the_listed_origins_and_their_cookie_crosses_sites(make_app, fake_redis):
    app, audit = make_app(
        redis_client=fake_redis,
        AUDIT_API_TOKEN="api-token",
        AUDIT_VIEWER_SECRET="v",
        AUDIT_VIEWER_FRAME_ANCESTORS="https://app.example.com https://*.example.org",
    )
    response = app.test_client().get("/audit/?token=api-token")
    assert (
        "frame-ancestors https://app.example.com https://*.example.org"
        in response.headers["Content-Security-Policy"]
    )
    assert "SameSite=None" in response.headers["Set-Cookie"] and "Secure" in response.headers["Set-Cookie"]


def test_a_hostile_frame_ancestors_value_is_refused_at_start(make_app, fake_redis):
    from flask_audit import AuditConfigError

    with pytest.raises(AuditConfigError) as err:
        make_app(redis_client=fake_redis, AUDIT_VIEWER_FRAME_ANCESTORS="https://a.example; script-src *")
    assert err.value.key == "AUDIT_VIEWER_FRAME_ANCESTORS"


def test_a_tenant_token_sees_only_its_tenant_in_the_page_and_through_the_api(viewer):
    app, audit = viewer
    with app.app_context():
        token = audit.viewer_token(tenant_id="acme", expires_in=300)
    client = app.test_client()
    assert client.get(f"/audit/?token={token}").status_code == 303
    page = client.get("/audit/").get_data(as_text=True)
    assert 'data-tenant="acme"' in page and 'name="tenant_id"' not in page
    items = client.get("/api/v1/audit-logs").json["items"]
    assert {i["tenant_id"] for i in items} == {"acme"} and len(items) == 3
    assert client.get("/api/v1/audit-logs?tenant_id=globex").status_code == 403
    other = app.test_client().get(
        "/api/v1/audit-logs?tenant_id=globex", headers={"Authorization": "Bearer api-token"}
    )
    globex_id = other.json["items"][0]["event_id"]
    assert client.get(f"/api/v1/audit-logs/{globex_id}").status_code == 404
    assert client.get(f"/api/v1/audit-logs/{globex_id}/seal").status_code == 404
    download = client.get("/api/v1/audit-logs/export?format=jsonl").get_data(as_text=True)
    assert download.count("\n") == 3 and "globex" not in download


def test_bad_tampered_and_expired_tokens_open_nothing(viewer, monkeypatch):
    app, audit = viewer
    client = app.test_client()
    assert client.get("/audit/").status_code == 401
    assert client.get("/audit/?token=nope").status_code == 401
    with app.app_context():
        token = audit.viewer_token(tenant_id="acme", expires_in=60)
    head, _, tail = token.rpartition(".")
    assert client.get(f"/audit/?token={head}.{tail[::-1]}").status_code == 401
    real_time = time.time
    monkeypatch.setattr(tokens.time, "time", lambda: real_time() + 61)
    assert client.get(f"/audit/?token={token}").status_code == 401
    client.set_cookie("audit_viewer", token)
    assert client.get("/api/v1/audit-logs").status_code == 401  # the cookie expires with it
    with pytest.raises(ValueError, match="expires_in"):
        audit.viewer_token(tenant_id="acme", expires_in=86_401)


def test_the_viewer_is_off_while_the_api_is(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    assert app.test_client().get("/audit/").status_code == 404


def test_the_download_streams_csv_without_formulas_and_the_search_reads_descriptions(viewer):
    app, audit = viewer
    client = app.test_client()
    client.get("/audit/?token=api-token")
    response = client.get("/api/v1/audit-logs/export?format=csv&tenant_id=globex")
    assert (
        response.is_streamed
        and response.headers["Content-Disposition"] == "attachment; filename=audit-log.csv"
    )
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 3 and all(r["description"].startswith("'=HYPERLINK") for r in rows)
    found = client.get("/api/v1/audit-logs?q=INVOICE 3").json["items"]
    assert [r["user_id"] for r in found] == ["u3"]
    assert client.get("/api/v1/audit-logs?q=50%25").json["items"] == []  # % is a character, not a wildcard
    assert client.get("/api/v1/audit-logs/event-types").json == {"items": []}
    assert client.get("/api/v1/audit-logs/export?format=xml").status_code == 400


def test_the_seal_status_says_unsealed_then_verified(viewer):
    from flask_audit.integrity.sealer import seal_pending

    app, audit = viewer
    runtime = audit.runtime(app)
    client = app.test_client()
    client.get("/audit/?token=api-token")
    event_id = client.get("/api/v1/audit-logs?limit=1").json["items"][0]["event_id"]
    assert client.get(f"/api/v1/audit-logs/{event_id}/seal").json == {"status": "unsealed"}
    seal_pending(runtime.store, runtime.signer)
    sealed = client.get(f"/api/v1/audit-logs/{event_id}/seal").json
    assert sealed["status"] == "verified" and sealed["problems"] == []


def test_an_apps_own_authorize_opens_the_viewer_without_a_token(make_app, fake_redis):
    app, audit = make_app(
        redis_client=fake_redis,
        authorize=lambda request: request.headers.get("X-Team") or None,  # the app's own login, say
    )
    client = app.test_client()
    assert client.get("/audit/").status_code == 401
    page = client.get("/audit/", headers={"X-Team": "acme"})
    assert page.status_code == 200 and 'data-tenant="acme"' in page.get_data(as_text=True)
    assert client.get("/api/v1/audit-logs?tenant_id=globex", headers={"X-Team": "acme"}).status_code == 403
