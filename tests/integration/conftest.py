"""Fixtures for tests that run real processes against the real Redis and PostgreSQL."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.processes import Process, python


@pytest.fixture
def service_env(pg_url: str, key_prefix: str) -> dict[str, str]:
    """Environment that points every process at this test's database and Redis keyspace."""
    from tests.conftest import REDIS_URL

    env = dict(os.environ)
    env.update(
        FLASK_APP="examples.app",
        AUDIT_REDIS_URL=REDIS_URL,
        AUDIT_KEY_PREFIX=key_prefix,
        AUDIT_DATABASE_URL=pg_url,
        AUDIT_DRAIN_INTERVAL_SECONDS="0.2",
        AUDIT_WORKER_HEARTBEAT_SECONDS="1",
        PYTHONUNBUFFERED="1",
    )
    subprocess.run(python("-m", "flask", "audit", "init-db"), env=env, check=True, capture_output=True)
    return env


@pytest.fixture
def spawn(tmp_path, request):
    """Start a process that is stopped by PID when the test ends, whatever happened; on failure its
    output is printed."""
    started: list[Process] = []

    def start(name: str, args: list[str], env: dict[str, str]) -> Process:
        process = Process(name, args, env, tmp_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        for process in started:
            print(f"--- {process.name} ---\n{process.output()[-4000:]}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
