"""The PostgreSQL cluster the tests use, found by the port they connect to, and a guard that
restarts it when a fault test run was interrupted while it was stopped.

A fault test writes GUARD_FILE (the cluster's version and name) before it stops the cluster and
removes it after the restart. If pytest is killed in between, the next test run finds the file
at start-up and starts the cluster again (``pytest_sessionstart`` in tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

#: where a fault test notes the cluster it stopped
GUARD_FILE = Path(tempfile.gettempdir()) / "flask-audit-tests-stopped-postgres"


def port_of(dsn: str) -> int:
    return urlsplit(dsn).port or 5432


def cluster_on(port: int) -> tuple[str, str]:
    """(version, name) of the local cluster that serves ``port``, from pg_lsclusters."""
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == str(port):
            return fields[0], fields[1]
    raise RuntimeError(f"no local PostgreSQL cluster serves port {port} (pg_lsclusters: {listing!r})")


def ctl(version: str, name: str, *action: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, *action],
        capture_output=True,
        text=True,
        timeout=120,
    )


def ready(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (
        subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(port), "-q"], timeout=10).returncode != 0
    ):
        if time.monotonic() > deadline:
            raise AssertionError(f"PostgreSQL on port {port} did not come back")
        time.sleep(0.2)


def stop(version: str, name: str, port: int) -> None:
    """Stop the cluster (fast: open transactions are cut), noting it in the guard file first."""
    GUARD_FILE.write_text(f"{version} {name} {port}\n")
    result = ctl(version, name, "stop", "-m", "fast")
    if result.returncode != 0:
        raise AssertionError(f"could not stop PostgreSQL {version}/{name}: {result.stderr}")


def start(version: str, name: str, port: int) -> None:
    ctl(version, name, "start")
    ready(port)
    GUARD_FILE.unlink(missing_ok=True)


def restart_if_left_stopped() -> str | None:
    """Start a cluster an interrupted fault test left stopped; returns what was done."""
    if not GUARD_FILE.exists():
        return None
    version, name, port = GUARD_FILE.read_text().split()
    start(version, name, int(port))
    return f"restarted PostgreSQL {version}/{name}, left stopped by an interrupted fault test"


def faults_enabled() -> bool:
    return os.environ.get("AUDIT_TEST_FAULTS", "") not in ("", "0")
