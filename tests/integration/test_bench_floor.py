"""The load bench's floor route (bench/load_app.py's /round-trip): each request waits for one PING
on the real Redis, on a socket its thread keeps; an answer other than PONG is an error, which the
bench's wrk run refuses, never an "ok" that would pass for a cheap request."""

from __future__ import annotations

import socket
import threading

import pytest

from bench import load_app
from tests.conftest import REDIS_URL


@pytest.fixture
def floor_app(monkeypatch, tmp_path):
    monkeypatch.setattr(load_app, "_kept", threading.local())  # no socket of another test's
    monkeypatch.setenv("AUDIT_DATABASE_URL", f"sqlite:///{tmp_path / 'audit.db'}")
    return load_app.create_app


def pings(client) -> int:
    return int(client.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))


def test_each_request_waits_for_one_ping_on_the_socket_its_thread_keeps(
    real_redis_client, floor_app, monkeypatch
):
    monkeypatch.setenv("AUDIT_REDIS_URL", REDIS_URL)
    client = floor_app().test_client()
    before = pings(real_redis_client)
    answers = [client.get("/round-trip") for _ in range(5)]
    assert [(a.status_code, a.text) for a in answers] == [(200, "ok")] * 5
    assert pings(real_redis_client) - before >= 5  # other clients of the shared server may ping too
    kept = load_app._kept.sock
    client.get("/round-trip")
    assert load_app._kept.sock is kept  # one connection for the thread, not one a request


def test_an_answer_other_than_pong_is_an_error(floor_app, monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer_wrongly():
        conn, _ = server.accept()
        conn.recv(64)
        conn.sendall(b"-ERR not now\r\n")
        conn.close()

    thread = threading.Thread(target=answer_wrongly, daemon=True)
    thread.start()
    monkeypatch.setenv("AUDIT_REDIS_URL", f"redis://127.0.0.1:{server.getsockname()[1]}/0")
    app = floor_app()
    app.testing = False  # the error becomes the 500 a real server gives
    answer = app.test_client().get("/round-trip")
    thread.join(timeout=5)
    server.close()
    assert answer.status_code == 500
