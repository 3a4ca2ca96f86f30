"""The load bench's floor routes (bench/load_app.py): /round-trip waits for one PING on the real
Redis, on a socket its thread keeps; an answer other than PONG is an error, which the bench's wrk
run refuses, never an "ok" that would pass for a cheap request. /audited-round-trip logs one
event and then makes the same round trip."""

from __future__ import annotations

import socket
import threading
import uuid

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


def test_the_floor_with_an_event_logs_one_event_and_then_pings(real_redis_client, floor_app, monkeypatch):
    prefix = f"floor-event-{uuid.uuid4().hex[:8]}:"
    monkeypatch.setenv("AUDIT_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("AUDIT_KEY_PREFIX", prefix)
    client = floor_app().test_client()  # direct mode here, so each event is in Redis on return
    before = pings(real_redis_client)
    try:
        answers = [client.get("/audited-round-trip") for _ in range(3)]
        assert [(a.status_code, a.text) for a in answers] == [(200, "ok")] * 3
        entries = real_redis_client.lrange(prefix + "queue", 0, -1)
        assert len(entries) == 3 and all(b"page_viewed" in entry for entry in entries)
        assert pings(real_redis_client) - before >= 3
    finally:
        keys = real_redis_client.keys(prefix + "*")
        if keys:
            real_redis_client.delete(*keys)
