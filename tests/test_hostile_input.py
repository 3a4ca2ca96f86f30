"""Each reproduction of the trust review, through the path a user takes, on the real Redis and
PostgreSQL: one client's bad string never costs another event, nor its own."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from flask_audit import FlaskAudit
from flask_audit.events.event import decode_entry
from flask_audit.pipeline.drain import Drainer
from flask_audit.queue.failed import FailedList

SURROGATE = json.loads('"\\ud800"')  # what a JSON body can decode to


@pytest.fixture
def real_app(make_app, real_redis_client, key_prefix, pg_url):
    def build(**options):
        return make_app(
            redis_client=real_redis_client, AUDIT_KEY_PREFIX=key_prefix, AUDIT_DATABASE_URL=pg_url, **options
        )

    return build


def stored(runtime) -> dict[str, object]:
    Drainer(runtime.background_queue, runtime.store).drain_all(100)
    return {str(row.event_id): row for row in runtime.store.model.select()}


@pytest.mark.parametrize("field", ["description", "user_id", "resource_type", "resource_id"])
def test_a_lone_surrogate_in_a_buffered_flush_loses_no_event(real_app, field):
    app, audit = real_app(AUDIT_BUFFERED=True, AUDIT_BUFFER_FLUSH_MS=60000)
    runtime = audit.runtime(app)
    with app.app_context():
        ids = [audit.log("quota_reached", user_id=f"u{i}") for i in range(4)]
        bad = audit.log("quota_reached", **{field: f"x{SURROGATE}y"})
        ids += [audit.log("quota_reached", user_id=f"u{i}") for i in range(4, 8)]
    assert runtime.buffer.flush() == 9
    rows = stored(runtime)
    assert set(rows) == {*ids, bad}
    assert getattr(rows[bad], field) == "x\ufffdy"
    assert rows[bad].metadata == {"_sanitized": [field]}
    assert (
        runtime.background_queue.depth() == 0
        and FailedList(runtime.background_redis, runtime.config).records(10) == []
    )


def test_a_lone_surrogate_is_stored_by_log_and_by_critical(real_app):
    app, audit = real_app()
    runtime = audit.runtime(app)
    with app.app_context():
        logged = audit.log("comment_posted", description=SURROGATE)
        critical = audit.critical("account_banned", description=SURROGATE, user_id=SURROGATE)
    rows = stored(runtime)
    assert rows[logged].description == "\ufffd"
    assert (rows[critical].description, rows[critical].user_id) == ("\ufffd", "\ufffd")
    assert rows[critical].metadata == {"_sanitized": ["description", "user_id"]}


def _audited_app(audit_options: dict, make) -> tuple[Flask, FlaskAudit]:
    app, audit = make(**audit_options)

    @app.post("/keys/<key_id>")
    @audit.audited("api_key_revoked", resource_id="key_id")
    def revoke(key_id):
        return {"revoked": key_id}

    return app, audit


@pytest.mark.parametrize(
    ("path", "environ", "field", "expected"),
    [
        ("/keys/a%00b", {}, "resource_id", "a\ufffdb"),
        ("/keys/" + "k" * 300, {}, "resource_id", "k" * 255),
        ("/keys/k1", {"HTTP_USER_AGENT": "agent\x00with nul"}, "user_agent", "agent\ufffdwith nul"),
        ("/keys/k1", {"REMOTE_ADDR": "fe80::1%" + "z" * 100}, "ip_address", "fe80::1"),
    ],
)
def test_audited_records_the_action_whatever_the_client_sent(real_app, path, environ, field, expected):
    """The view succeeded, so its record exists: hostile path parameters and headers are repaired."""
    app, audit = _audited_app({}, real_app)
    response = app.test_client().post(path, environ_overrides=environ)
    assert response.status_code == 200
    (row,) = stored(audit.runtime(app)).values()
    assert row.event_type == "api_key_revoked"
    assert getattr(row, field) == expected
    assert row.metadata == {"_sanitized": [field]}


def test_audited_refuses_the_applications_mistakes_at_decoration(make_app, fake_redis):
    _, audit = make_app(redis_client=fake_redis)
    with pytest.raises(ValueError, match="event_type"):
        audit.audited("has space")
    with pytest.raises(ValueError, match="event_category"):
        audit.audited("ok", event_category="fatal")
    with pytest.raises(TypeError, match="colour"):
        audit.audited("ok", colour="blue")


def test_entries_of_an_older_producer_with_zone_ids_land_and_can_be_requeued(real_app):
    """Entries that the drain once refused for a long IPv6 zone id are repaired by the worker."""
    app, audit = real_app()
    runtime = audit.runtime(app)
    with app.app_context():
        event_id = audit.log("login")
    (raw,) = runtime.background_redis.lrange(runtime.config.queue_key, 0, -1)
    entry = {**decode_entry(raw), "v": 1}  # as a JSON entry
    entry["ip_address"] = "fe80::1%" + "z" * 100  # as an older release queued it
    runtime.background_redis.delete(runtime.config.queue_key)
    runtime.background_queue.push([json.dumps(entry).encode()])
    rows = stored(runtime)
    assert rows[event_id].ip_address == "fe80::1"
