"""The viewer in headless Chromium: filters change the rows, paging reaches the last page, the
details show the metadata, the related events and the seal, a tenant's token shows only its
tenant, the token leaves the address, and the console stays clean."""

from __future__ import annotations

import html
import re
import threading
from datetime import datetime, timedelta, timezone

import pytest
from werkzeug.serving import make_server

from flask_audit.events.event import build_event
from flask_audit.integrity.sealer import seal_pending
from tests.browser import render


@pytest.fixture
def served(make_app, fake_redis):
    """The app on a loopback port with 130 events: two tenants, three types, a request of three."""
    app, audit = make_app(
        redis_client=fake_redis, AUDIT_API_TOKEN="api-token", AUDIT_VIEWER_SECRET="v-secret"
    )
    runtime = audit.runtime(app)
    audit.register_event_type("invoice_paid")
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    events = [
        build_event(
            "invoice_paid" if i % 3 else "login_failed",
            user_id="pager" if i < 120 else f"user-{i}",
            tenant_id="acme" if i % 2 else "globex",
            outcome="denied" if i % 10 == 0 else "success",
            description=f"event number {i} <b>bold?</b>",
            metadata={"amount": i, "lines": [{"sku": "A-1", "qty": 2}]},
            request_id="req-shared" if i in (125, 126, 127) else f"req-{i}",
            created_at=start + timedelta(minutes=i),
        )
        for i in range(130)
    ]
    runtime.store.insert(events)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", app, audit, events
    server.shutdown()


def body_data(dom: str) -> dict[str, str]:
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', re.search(r"<body([^>]*)>", dom).group(1)))


def rows(dom: str) -> list[str]:
    """The table's rows as their text, in order."""
    tbody = re.search(r"<tbody>(.*?)</tbody>", dom, re.S).group(1)
    return [
        html.unescape(re.sub(r"<[^>]+>", " ", tr)) for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", tbody, re.S)
    ]


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def test_the_list_loads_with_the_token_gone_from_the_address_and_no_console_errors(
    chromium, served, tmp_path
):
    base, app, audit, events = served
    dom, log = render(chromium, base + "/audit/?token=api-token", tmp_path)
    data = body_data(dom)
    assert data["state"] == "ready" and data["address"] == "/audit/"  # the redirect dropped the token
    shown = rows(dom)
    assert len(shown) == 50 and "event number 129" in shown[0]  # newest first
    assert "<b>bold?</b>" in shown[0]  # shown as text, never as markup
    assert console_errors(log) == []


def test_filters_in_the_address_change_the_rows(chromium, served, tmp_path):
    base, app, audit, events = served
    dom, _ = render(
        chromium, base + "/audit/?token=api-token&event_type=login_failed&outcome=denied", tmp_path
    )
    shown = rows(dom)
    expected = [e for e in events if e.event_type == "login_failed" and e.outcome == "denied"]
    assert len(shown) == len(expected) > 0
    assert all("login_failed" in r and "denied" in r for r in shown)
    assert 'value="login_failed"' in dom  # the form shows the filter it applied
    # the free-text search reads the time range in the address (without one: the last 7 days)
    dom, _ = render(chromium, base + "/audit/?token=api-token&q=number%207%20", tmp_path)
    assert rows(dom) == [] and "No events match these filters." in dom
    dom, _ = render(
        chromium, base + "/audit/?token=api-token&since=2026-11-01T00:00:00&q=number%207%20", tmp_path
    )
    assert len(rows(dom)) == 1 and "event number 7 " in rows(dom)[0]


def test_paging_reaches_the_last_page(chromium, served, tmp_path):
    base, app, audit, events = served
    url, seen, pages = base + "/audit/?token=api-token&user_id=pager", [], 0
    while True:
        dom, log = render(chromium, url, tmp_path)
        assert console_errors(log) == []
        seen += rows(dom)
        pages += 1
        link = re.search(r'<a id="next-page" href="([^"]*)" rel="next"( hidden="")?>', dom)
        if link.group(2) is not None:
            break
        url = base + "/audit/" + html.unescape(link.group(1))
    assert pages == 3 and len(seen) == 120
    numbers = [int(re.search(r"event number (\d+)", r).group(1)) for r in seen]
    assert numbers == list(range(119, -1, -1))  # every row once, newest to oldest


def test_the_details_show_metadata_related_events_and_the_seal(chromium, served, tmp_path):
    base, app, audit, events = served
    runtime = audit.runtime(app)
    seal_pending(runtime.store, runtime.signer)
    event = events[126]
    dom, log = render(chromium, f"{base}/audit/events/{event.event_id}?token=api-token", tmp_path)
    assert body_data(dom)["state"] == "ready" and console_errors(log) == []
    assert "Sealed and verified" in dom and f'href="/api/v1/audit-logs/{event.event_id}/proof"' in dom
    metadata = html.unescape(re.search(r'<pre id="metadata">(.*?)</pre>', dom, re.S).group(1))
    assert '"sku": "A-1"' in metadata and '\n  "amount": 126' in metadata  # pretty-printed
    related = re.search(r'<ul id="related">(.*?)</ul>', dom, re.S).group(1)
    assert related.count("<li>") == 2
    assert events[125].event_id in related and events[127].event_id in related


def test_a_tenant_token_never_shows_another_tenants_rows(chromium, served, tmp_path):
    base, app, audit, events = served
    with app.app_context():
        token = audit.viewer_token(tenant_id="acme", expires_in=300)
    dom, log = render(chromium, f"{base}/audit/?token={token}&user_id=pager", tmp_path)
    shown = rows(dom)
    acme = [e for e in events if e.tenant_id == "acme" and e.user_id == "pager"]
    assert len(shown) == 50 and console_errors(log) == []
    numbers = {int(re.search(r"event number (\d+)", r).group(1)) for r in shown}
    assert numbers <= {int(e.description.split()[2]) for e in acme}
    assert body_data(dom)["address"] == "/audit/?user_id=pager"
    globex = next(e for e in events if e.tenant_id == "globex")
    dom, _ = render(chromium, f"{base}/audit/events/{globex.event_id}?token={token}", tmp_path)
    assert "Event not found" in dom and "event number" not in dom
