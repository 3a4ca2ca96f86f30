"""Fixtures in the shape of Flask's tutorial suite: ``app``, ``client``, ``auth``. The
``audit_events`` fixture comes from flask-audit's pytest plugin and uses ``app``.

``FLASKR_AUDITED=0`` builds the app without the extension (the timing baseline in
bench/testing_mode.py)."""

from __future__ import annotations

import os

import pytest

from tests.flaskr.app import create_app, init_db

AUDITED = os.environ.get("FLASKR_AUDITED", "1") == "1"


@pytest.fixture
def app(tmp_path):
    database = str(tmp_path / "flaskr.sqlite")
    init_db(database)
    return create_app(
        {"TESTING": True, "DATABASE": database, "INSTANCE": str(tmp_path / "instance")}, AUDITED
    )


@pytest.fixture
def client(app):
    return app.test_client()


class AuthActions:
    def __init__(self, client):
        self._client = client

    def login(self, username="test", password="test"):
        return self._client.post("/auth/login", data={"username": username, "password": password})

    def logout(self):
        return self._client.get("/auth/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def events(request):
    """The audit events of this test (an empty list when the app is built without auditing)."""
    return request.getfixturevalue("audit_events") if AUDITED else _Nothing()


class _Nothing(list):
    def assert_logged(self, *args, **kwargs):
        return {}

    def assert_not_logged(self, *args, **kwargs):
        return None

    def of_type(self, *args):
        return []
