"""AUDIT_TESTING and flask_audit.testing: a test run records events in memory and opens no
socket, writes no file, starts no thread or process."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from flask import Flask

from flask_audit import FlaskAudit
from flask_audit.testing import capture


def app_under_test(tmp_path, **config):
    app = Flask("under_test", instance_path=str(tmp_path / "instance"))
    app.config.update(TESTING=True, **config)
    audit = FlaskAudit(app)

    @app.post("/keys")
    def create_key():
        audit.log("api_key_created", user_id="42", resource_type="api_key", resource_id="k1")
        return {"ok": True}, 201

    @app.post("/ban/<int:account>")
    @audit.audited("permanent_ban_applied", resource_id="account", resource_type="account")
    def ban(account):
        return {"banned": account}

    return app, audit


def test_testing_is_on_when_the_app_is_testing_unless_said_otherwise(tmp_path):
    app, audit = app_under_test(tmp_path)
    assert app.config["AUDIT_TESTING"] is True and audit.runtime(app).recorder == []
    other, audit2 = app_under_test(tmp_path, AUDIT_TESTING=False)
    assert other.config["AUDIT_TESTING"] is False and audit2.runtime(other).recorder is None


def test_a_testing_run_opens_no_socket_writes_no_file_and_starts_no_thread(tmp_path, monkeypatch):
    opened: list[object] = []
    real_socket, real_open, real_thread_start = socket.socket.connect, os.open, threading.Thread.start

    def connect(self, address):
        opened.append(("connect", address))
        return real_socket(self, address)

    def os_open(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path)):
            opened.append(("open", path))
        return real_open(path, *args, **kwargs)

    def start(self):
        opened.append(("thread", self.name))
        return real_thread_start(self)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(threading.Thread, "start", start)
    app, audit = app_under_test(tmp_path)
    client = app.test_client()
    with capture(app) as events:
        assert client.post("/keys").status_code == 201
        assert client.post("/ban/7").status_code == 200
        with app.app_context():
            audit.critical("permanent_ban_applied", user_id="9")
    assert opened == []
    assert not (tmp_path / "instance").exists()
    assert [e["event_type"] for e in events] == [
        "api_key_created",
        "permanent_ban_applied",
        "permanent_ban_applied",
    ]


def test_capture_is_live_and_asserts_with_a_readable_message(tmp_path):
    app, audit = app_under_test(tmp_path)
    client = app.test_client()
    with capture(app) as events:
        client.post("/keys")
        created = events.assert_logged("api_key_created", user_id="42", resource_id="k1")
        assert created["event_category"] == "info" and created["request_id"]
        client.post("/ban/7")
        assert events.of_type("permanent_ban_applied")[0]["resource_id"] == "7"
        with pytest.raises(AssertionError) as err:
            events.assert_logged("api_key_created", user_id="43")
        assert "no event matches 'api_key_created', user_id='43'; recorded:" in str(err.value)
        assert "  api_key_created user_id='42'" in str(err.value)
        events.assert_not_logged("api_key_deleted")
    client.post("/keys")
    assert len(events) == 2  # what the block recorded, not what came after


def test_capture_also_works_outside_testing_mode_and_sends_nothing(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    runtime = audit.runtime(app)
    with capture(app) as events, app.app_context():
        audit.log("x", user_id="1")
    assert runtime.queue.depth() == 0 and len(events) == 1
    with app.app_context():
        audit.log("y")
    assert runtime.queue.depth() == 1  # the pipeline again after the block
