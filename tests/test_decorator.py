"""@audited tells the truth: the outcome of each request, only the methods that act, what the
view adds with audit.annotate, and where it goes with login_required."""

from __future__ import annotations

import functools

import pytest
from flask import Flask, abort, g, redirect, request

from flask_audit import FlaskAudit
from flask_audit.testing import capture


@pytest.fixture
def site(tmp_path):
    app = Flask("decorated", instance_path=str(tmp_path / "instance"))
    app.config.update(TESTING=True, SECRET_KEY="x")
    audit = FlaskAudit(app, user_loader=lambda: g.get("user"))
    return app, audit


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "success"),
        (201, "success"),
        (302, "success"),
        (400, "failure"),
        (401, "denied"),
        (403, "denied"),
        (404, "failure"),
        (409, "failure"),
        (500, "failure"),
        (503, "failure"),
    ],
)
def test_the_outcome_follows_the_status(site, status, outcome):
    app, audit = site

    @app.post("/act")
    @audit.audited("acted")
    def act():
        return "", status

    with capture(app) as events:
        app.test_client().post("/act")
    assert [(e["event_type"], e["outcome"]) for e in events] == [("acted", outcome)]


def test_a_view_that_raises_is_a_failure_named_by_its_exception_and_still_raises(site):
    app, audit = site
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.post("/boom")
    @audit.audited("exploded", metadata={"step": 1})
    def boom():
        raise ZeroDivisionError("no")

    @app.post("/forbidden")
    @audit.audited("looked")
    def forbidden():
        abort(403)

    with capture(app) as events:
        assert app.test_client().post("/boom").status_code == 500
        assert app.test_client().post("/forbidden").status_code == 403
    assert [(e["outcome"], e["metadata"]) for e in events] == [
        ("failure", {"step": 1, "error": "ZeroDivisionError"}),
        ("denied", {"error": "Forbidden"}),
    ]


def test_a_form_route_is_audited_on_its_post_only_unless_told(site):
    app, audit = site

    @app.route("/profile", methods=["GET", "POST"])
    @audit.audited("profile_updated")
    def profile():
        return "form" if request.method == "GET" else ("saved", 200)

    @app.route("/report", methods=["GET"])
    @audit.audited("report_viewed")
    def report():
        return "report"

    @app.route("/search", methods=["GET", "POST"])
    @audit.audited("searched", methods=["GET"])
    def search():
        return "results"

    client = app.test_client()
    with capture(app) as events:
        client.get("/profile")  # the form's render: not the action
        client.post("/profile")
        client.get("/report")  # a GET-only route: its GET is the action
        client.get("/search")
        client.post("/search")  # not listed
    assert [e["event_type"] for e in events] == ["profile_updated", "report_viewed", "searched"]


def test_annotate_sets_the_outcome_adds_fields_and_can_skip(site):
    app, audit = site

    @app.post("/posts/<int:post_id>")
    @audit.audited("post_updated", resource_type="post", resource_id="post_id", metadata={"by": "form"})
    def update(post_id):
        if not request.form.get("title"):
            audit.annotate(outcome="failure", metadata={"invalid": ["title"]}, description="title missing")
            return "Title is required.", 200  # the tutorial's way: 200 with an error message
        if request.form["title"] == "same":
            audit.annotate(skip=True)  # nothing changed: nothing to record
            return "unchanged"
        audit.annotate(resource_id=f"post-{post_id}")
        return "saved"

    client = app.test_client()
    with capture(app) as events:
        client.post("/posts/1", data={"title": ""})
        client.post("/posts/1", data={"title": "same"})
        client.post("/posts/1", data={"title": "new"})
    assert [(e["outcome"], e["resource_id"], e["metadata"], e["description"]) for e in events] == [
        ("failure", "1", {"by": "form", "invalid": ["title"]}, "title missing"),
        ("success", "post-1", {"by": "form"}, None),
    ]


def test_annotate_outside_a_decorated_view_and_with_a_bad_value_is_the_apps_mistake(site):
    app, audit = site
    from flask_audit import AuditValidationError

    with app.test_request_context("/"), pytest.raises(RuntimeError, match="decorated with @audit.audited"):
        audit.annotate(outcome="failure")

    @app.post("/x")
    @audit.audited("x")
    def x():
        audit.annotate(outcome="partial")
        return "ok"

    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(AuditValidationError, match="outcome: must be one of success, failure, denied"):
        app.test_client().post("/x")


def login_required(view):
    @functools.wraps(view)
    def wrapped(**kwargs):
        if g.get("user") is None:
            return redirect("/login")
        return view(**kwargs)

    return wrapped


def test_below_login_required_an_anonymous_redirect_is_not_the_action(site):
    app, audit = site

    @app.before_request
    def load_user():
        g.user = request.headers.get("X-User")

    @app.post("/right")
    @login_required
    @audit.audited("changed")  # nearer the view: runs only once the user is known
    def right():
        return "done"

    @app.post("/wrong")
    @audit.audited("changed")  # outside login_required: the redirect is recorded as the action
    @login_required
    def wrong():
        return "done"

    client = app.test_client()
    with capture(app) as events:
        assert client.post("/right").status_code == 302
        client.post("/right", headers={"X-User": "42"})
        client.post("/wrong")
    assert [(e["user_id"], e["outcome"]) for e in events] == [("42", "success"), (None, "success")]
