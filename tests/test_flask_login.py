"""Login events from Flask-Login's signals, and the one line that records a failed login."""

from __future__ import annotations

import pytest
from flask import Flask, request
from flask_login import LoginManager, UserMixin, login_required, login_user, logout_user

from flask_audit import FlaskAudit
from flask_audit.integrations.flask_login import login_failed
from flask_audit.testing import capture


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


PASSWORDS = {"alice": "right", "bob": "also-right"}


def site(tmp_path, **options):
    app = Flask("with_login", instance_path=str(tmp_path / "instance"))
    app.config.update(TESTING=True, SECRET_KEY="s", **options)
    login = LoginManager(app)
    login.user_loader(lambda user_id: User(user_id) if user_id in PASSWORDS else None)
    audit = FlaskAudit(app)

    @app.post("/login")
    def do_login():
        name = request.form["username"]
        if PASSWORDS.get(name) != request.form["password"]:
            login_failed(name)  # the one line: Flask-Login never sees the password check
            return "no", 401
        login_user(User(name))
        return "welcome"

    @app.post("/logout")
    def do_logout():
        logout_user()
        return "bye"

    @app.post("/secret")
    @login_required
    def secret():
        audit.log("secret_read")  # the current user is every event's user
        return "42"

    return app, audit


def test_logins_logouts_and_unauthorized_requests_are_recorded(tmp_path):
    app, audit = site(tmp_path, AUDIT_FLASK_LOGIN=True)
    client = app.test_client()
    with capture(app) as events:
        assert client.post("/secret").status_code == 401
        client.post("/login", data={"username": "alice", "password": "wrong"})
        client.post("/login", data={"username": "alice", "password": "right"})
        client.post("/secret")
        client.post("/logout")
    assert [(e["event_type"], e["outcome"], e["user_id"]) for e in events] == [
        ("user_unauthorized", "denied", None),
        ("user_logged_in", "failure", None),
        ("user_logged_in", "success", "alice"),
        ("secret_read", "success", "alice"),
        ("user_logged_out", "success", "alice"),
    ]
    assert events[0]["metadata"] == {"path": "/secret", "endpoint": "secret", "method": "POST"}
    assert events[1]["metadata"] == {"username": "alice", "reason": "bad credentials"}
    assert events[0]["event_category"] == "warning"  # the integration registers its event types
    assert {"user_logged_in", "user_logged_out", "user_unauthorized"} <= {t.name for t in audit.vocabulary}


def test_without_the_switch_nothing_is_connected(tmp_path):
    app, audit = site(tmp_path)
    client = app.test_client()
    with capture(app) as events:
        client.post("/secret")
        client.post("/login", data={"username": "bob", "password": "also-right"})
    assert list(events) == []


def test_strict_mode_accepts_the_integrations_event_types(tmp_path):
    app, audit = site(tmp_path, AUDIT_FLASK_LOGIN=True, AUDIT_STRICT_EVENT_TYPES=True)
    with capture(app) as events:
        app.test_client().post("/login", data={"username": "bob", "password": "also-right"})
    assert [e["event_type"] for e in events] == ["user_logged_in"]
    with pytest.raises(Exception, match="not a registered event type"), app.test_request_context("/"):
        audit.log("secret_read")
