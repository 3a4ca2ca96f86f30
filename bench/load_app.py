"""The app `bench/load.py` puts under load: one route that answers "ok", the same route with one
`audit.log`, one that waits for a bare Redis round trip instead (the floor of any event that is
confirmed before the call returns), and one that logs an event and then waits for that round
trip (what a direct event is made of, without its push: run in buffered mode). Configured from
the environment (AUDIT_*), like any app."""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlsplit

from flask import Flask

from flask_audit import FlaskAudit

#: /round-trip's kept socket, one a thread (a thread of a gthread worker serves one request at a time)
_kept = threading.local()


def redis_socket() -> socket.socket:
    """This thread's socket to AUDIT_REDIS_URL's Redis (TCP), connected on first use and kept."""
    sock = getattr(_kept, "sock", None)
    if sock is None:
        url = urlsplit(os.environ.get("AUDIT_REDIS_URL", "redis://127.0.0.1:6379/0"))
        sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _kept.sock = sock
    return sock


def ping(sock: socket.socket) -> bytes:
    """One PING, written and answered: the least a request pays to hear from Redis. No event,
    no library in between, so what it costs over the plain route is the wait itself."""
    sock.sendall(b"PING\r\n")
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(64)
        if not chunk:
            raise ConnectionError("Redis closed the connection")
        reply += chunk
    return reply


def create_app() -> Flask:
    app = Flask(__name__)
    audit = FlaskAudit(app, user_loader=lambda: "load-user")

    @app.get("/plain")
    def plain() -> str:
        return "ok"

    @app.get("/audited")
    def audited() -> str:
        audit.log("page_viewed", resource_type="page", resource_id="1")
        return "ok"

    @app.get("/round-trip")
    def round_trip() -> str:
        reply = ping(redis_socket())
        if reply != b"+PONG\r\n":  # a 500, which the bench's wrk run refuses
            raise RuntimeError(f"Redis answered PING with {reply!r}")
        return "ok"

    @app.get("/audited-round-trip")
    def audited_round_trip() -> str:
        audit.log("page_viewed", resource_type="page", resource_id="1")
        return round_trip()

    return app
