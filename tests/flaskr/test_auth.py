"""The tutorial's auth tests, with the audit events each action records."""

import pytest

from tests.flaskr.conftest import AUDITED


def test_register(client, app, events):
    assert client.get("/auth/register").status_code == 200
    response = client.post("/auth/register", data={"username": "a", "password": "a"})
    assert response.headers["Location"] == "/auth/login"
    registered = events.assert_logged("user_registered", resource_type="user")
    if AUDITED:
        assert registered["user_id"] == "3" and registered["event_category"] == "info"


@pytest.mark.parametrize(
    ("username", "password", "message"),
    (
        ("", "", b"Username is required."),
        ("a", "", b"Password is required."),
        ("test", "test", b"already registered"),
    ),
)
def test_register_validate_input(client, events, username, password, message):
    response = client.post("/auth/register", data={"username": username, "password": password})
    assert message in response.data
    events.assert_not_logged("user_registered")


def test_login(client, auth, events):
    assert client.get("/auth/login").status_code == 200
    response = auth.login()
    assert response.headers["Location"] == "/"
    events.assert_logged("user_logged_in", user_id="1", outcome="success")


@pytest.mark.parametrize(("username", "password"), (("a", "test"), ("test", "a")))
def test_login_validate_input(auth, events, username, password):
    response = auth.login(username, password)
    assert b"Incorrect username or password." in response.data
    failed = events.assert_logged("user_logged_in", outcome="failure")
    if AUDITED:
        assert failed["metadata"] == {"username": username} and failed["user_id"] is None


def test_logout(client, auth, events):
    auth.login()
    auth.logout()
    assert [e["event_type"] for e in events] == (["user_logged_in"] if AUDITED else [])
