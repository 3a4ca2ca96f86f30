"""The tutorial's blog tests, with the audit events each action records."""

import pytest

from tests.flaskr.conftest import AUDITED


def test_index(client, auth, events):
    assert b"test title" in client.get("/").data
    auth.login()
    assert client.get("/").status_code == 200
    assert len(events.of_type("user_logged_in")) == (1 if AUDITED else 0)


@pytest.mark.parametrize("path", ("/create", "/1/update"))
def test_login_required(client, events, path):
    assert client.post(path).headers["Location"] == "/auth/login"
    assert list(events) == []  # nothing happened, nothing recorded


def test_author_required(app, client, auth, events):
    import sqlite3

    with sqlite3.connect(app.config["DATABASE"]) as db:
        db.execute("UPDATE post SET author_id = 2 WHERE id = 1")
    auth.login()
    assert client.post("/1/update").status_code == 403
    assert client.post("/1/delete").status_code == 403
    events.assert_not_logged("post_deleted")
    if AUDITED:  # the decorated update records the refusal
        assert events.assert_logged("post_updated", outcome="denied")["metadata"] == {"error": "Forbidden"}


@pytest.mark.parametrize("path", ("/2/update", "/2/delete"))
def test_exists_required(client, auth, path):
    auth.login()
    assert client.post(path).status_code == 404


def test_create(client, auth, events):
    auth.login()
    assert client.get("/create").status_code == 200
    client.post("/create", data={"title": "created", "body": ""})
    created = events.assert_logged("post_created", resource_type="post", resource_id="2")
    if AUDITED:
        assert created["user_id"] == "1" and created["request_id"]


def test_update(client, auth, events):
    auth.login()
    assert client.get("/1/update").status_code == 200
    client.post("/1/update", data={"title": "updated", "body": ""})
    events.assert_logged("post_updated", resource_id="1", user_id="1", outcome="success")
    assert len(events.of_type("post_updated")) == (1 if AUDITED else 0)  # the form's GET: not the action


@pytest.mark.parametrize("path", ("/create", "/1/update"))
def test_create_update_validate(client, auth, events, path):
    auth.login()
    response = client.post(path, data={"title": "", "body": ""})
    assert b"Title is required." in response.data
    events.assert_not_logged("post_created")
    if path == "/1/update" and AUDITED:  # the decorated view says the attempt failed
        assert events.assert_logged("post_updated", outcome="failure")["metadata"] == {"invalid": ["title"]}
    else:
        events.assert_not_logged("post_updated")


def test_delete(client, auth, events):
    auth.login()
    response = client.post("/1/delete")
    assert response.headers["Location"] == "/"
    deleted = events.assert_logged("post_deleted", resource_id="1")
    if AUDITED:
        assert deleted["event_category"] == "warning"


def test_the_suite_leaves_no_audit_file_behind(app, client, auth):
    import os

    auth.login()
    client.post("/create", data={"title": "t", "body": "b"})
    assert not os.path.exists(app.instance_path)  # no audit.db, no audit-redis.db, no spool
