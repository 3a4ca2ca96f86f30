"""The guard: a fault run killed while PostgreSQL was stopped leaves a note, and the next test
run (any test run) starts the cluster again before its first test."""

from __future__ import annotations

import subprocess

from tests import cluster
from tests.conftest import PG_ADMIN_DSN
from tests.processes import python


def test_the_next_test_run_restarts_a_cluster_left_stopped():
    port = cluster.port_of(PG_ADMIN_DSN)
    version, name = cluster.cluster_on(port)
    try:
        cluster.stop(version, name, port)  # what postgres_stopped() does before pytest is killed
        assert (
            subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(port), "-q"], timeout=10).returncode
            != 0
        )
        run = subprocess.run(
            python("-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_batching.py"),
            capture_output=True,
            text=True,
            timeout=300,
            env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        )
        assert "restarted PostgreSQL" in run.stdout, run.stdout + run.stderr
        assert (
            subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(port), "-q"], timeout=10).returncode
            == 0
        )
        assert not cluster.GUARD_FILE.exists()
    finally:
        if cluster.GUARD_FILE.exists():
            cluster.start(version, name, port)
