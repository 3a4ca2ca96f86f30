"""The embedded Redis (no AUDIT_REDIS_URL) is stopped by the last process that uses it: after a
CLI command, after SIGTERM to the clock, after a buffered process's final flush, and not while
another process still needs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.processes import python, wait_for

APP = """
import os
from flask import Flask
from flask_audit import FlaskAudit

def create_app():
    app = Flask("embapp", instance_path=os.environ["EMB_INSTANCE"])
    FlaskAudit(app)
    return app
"""


def servers(instance: Path) -> list[psutil.Process]:
    """Live redis-server processes serving this instance folder (their working directory)."""
    found = []
    for proc in psutil.process_iter(["name", "cwd", "status"]):
        info = proc.info
        if (
            info["name"] == "redis-server"
            and info["cwd"] == str(instance)
            and info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(proc)
    return found


def environment(tmp_path: Path) -> tuple[dict[str, str], Path]:
    (tmp_path / "embapp.py").write_text(APP)
    instance = tmp_path / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    env.update(
        FLASK_APP="embapp:create_app",
        PYTHONPATH=str(tmp_path),
        EMB_INSTANCE=str(instance),
        AUDIT_DATABASE_URL=f"sqlite:///{tmp_path}/audit.db",
    )
    return env, instance


@pytest.mark.processes
def test_a_cli_command_leaves_no_server_behind(tmp_path):
    env, instance = environment(tmp_path)
    result = subprocess.run(
        python("-m", "flask", "audit", "status"), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "status" in result.stdout
    assert (instance / "audit-redis.db").exists()  # the server really ran, and saved on the way out
    assert servers(instance) == []


def test_sigterm_to_the_clock_stops_the_server_and_keeps_the_queue(tmp_path, spawn):
    env, instance = environment(tmp_path)
    enqueue = "from embapp import create_app; a = create_app(); a.extensions['audit'].log('kept')"
    clock = spawn("clock", python("-m", "flask", "audit", "scheduler"), env)
    wait_for(lambda: servers(instance), 30, "the embedded server")
    # a second user comes and goes: the server stays for the clock
    subprocess.run(python("-c", enqueue), env=env, check=True, timeout=60, capture_output=True)
    assert servers(instance), "a second process must not stop a server the clock still uses"
    assert clock.stop() == 0  # SIGTERM: a normal exit, so exit handlers ran
    wait_for(lambda: not servers(instance), 10, "the server to stop with its last user")
    # the queued event survived in the database file
    count = "from embapp import create_app; a = create_app(); print(a.extensions['audit'].runtime().queue.depth())"
    out = subprocess.run(python("-c", count), env=env, check=True, timeout=60, capture_output=True, text=True)
    assert out.stdout.strip() == "1"
    assert servers(instance) == []


@pytest.mark.parametrize("flush_ms", [60000, 50], ids=["exit-flush-only", "flushed-before-exit"])
def test_a_buffered_process_alone_flushes_into_the_server_before_it_stops(tmp_path, flush_ms):
    """Exit handlers run last registered, first run: the buffer's final flush must come before
    the embedded server's shutdown. Before, a process whose first flush was its exit flush
    started a server that nothing stopped, and one that had flushed before found the server
    shut down and sent its last events to the database instead."""
    env, instance = environment(tmp_path)
    env["AUDIT_BUFFERED"] = "true"
    env["AUDIT_BUFFER_FLUSH_MS"] = str(flush_ms)
    enqueue = (
        "import time\n"
        "from embapp import create_app; a = create_app(); audit = a.extensions['audit']\n"
        "for n in range(5): audit.log('kept', user_id=n)\n"
        "time.sleep(0.5)  # past a 50 ms flush\n"
        "for n in range(5, 10): audit.log('kept', user_id=n)\n"
    )
    try:
        done = subprocess.run(python("-c", enqueue), env=env, timeout=60, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "falling back" not in done.stderr, done.stderr
        assert servers(instance) == []
        count = "from embapp import create_app; a = create_app(); print(a.extensions['audit'].runtime().queue.depth())"
        out = subprocess.run(
            python("-c", count), env=env, check=True, timeout=60, capture_output=True, text=True
        )
        assert out.stdout.strip() == "10"
    finally:  # a server left behind by a failure is stopped by PID
        for server in servers(instance):
            server.terminate()
