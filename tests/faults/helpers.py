"""Fault-injection helpers: stop and restart PostgreSQL, slow its inserts, and the ledger."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator

import psycopg2

from flask_audit.runtime import AuditRuntime


def _cluster() -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


def pg_ready(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode != 0:
        if time.monotonic() > deadline:
            raise AssertionError("PostgreSQL did not come back")
        time.sleep(0.2)


def start_postgres() -> None:
    subprocess.run([*_cluster(), "start"], check=False, capture_output=True)
    pg_ready()


@contextlib.contextmanager
def postgres_stopped() -> Iterator[None]:
    """PostgreSQL is down inside the block (fast shutdown: open transactions are cut), and is
    started again when the block ends, whatever happened in it."""
    subprocess.run([*_cluster(), "stop", "-m", "fast"], check=True, capture_output=True)
    try:
        yield
    finally:
        start_postgres()


def execute(pg_url: str, sql: str) -> None:
    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def slow_inserts(pg_url: str, seconds: float) -> None:
    """Every INSERT statement into audit_logs takes at least ``seconds``: a batch in flight lasts
    long enough to kill or stop its worker in the middle of it."""
    execute(
        pg_url,
        f"""
        CREATE OR REPLACE FUNCTION audit_test_slow() RETURNS trigger AS $$
        BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$ LANGUAGE plpgsql;
        DROP TRIGGER IF EXISTS audit_test_slow ON audit_logs;
        CREATE TRIGGER audit_test_slow BEFORE INSERT ON audit_logs
            FOR EACH STATEMENT EXECUTE FUNCTION audit_test_slow();
        """,
    )


def fast_inserts(pg_url: str) -> None:
    execute(pg_url, "DROP TRIGGER IF EXISTS audit_test_slow ON audit_logs")


def stored_ids(pg_url: str) -> list[str]:
    conn = psycopg2.connect(pg_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT event_id::text FROM audit_logs")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def ledger(runtime: AuditRuntime, pg_url: str, sent: int) -> dict[str, int]:
    """Account for every event sent: stored + queued + in flight + failed + spooled + dropped.

    Asserts that the books balance and that no event_id is stored twice; returns the books.
    """
    ids = stored_ids(pg_url)
    queue = runtime.background_queue
    totals = runtime.background_metrics.snapshot().totals
    books = {
        "sent": sent,
        "stored": len(ids),
        "queued": queue.depth(),
        "inflight": queue.inflight_count(),
        "failed": queue.failed_length(),
        "spooled": runtime.spool.pending(),
        "dropped": totals["dropped"],
    }
    assert len(ids) == len(set(ids)), f"duplicate event_ids stored: {len(ids) - len(set(ids))}"
    accounted = sum(v for k, v in books.items() if k != "sent")
    assert accounted == sent, f"ledger does not balance: {books}"
    return books
