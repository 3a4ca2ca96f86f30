"""Fault-injection helpers: stop and restart PostgreSQL, slow its inserts, and the ledger."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg2

from flask_audit.runtime import AuditRuntime
from tests import cluster
from tests.conftest import PG_ADMIN_DSN


def _cluster() -> tuple[str, str, int]:
    """The cluster that serves the port the tests connect to (not the first one installed)."""
    port = cluster.port_of(PG_ADMIN_DSN)
    return (*cluster.cluster_on(port), port)


def start_postgres() -> None:
    cluster.start(*_cluster())


@contextlib.contextmanager
def postgres_stopped() -> Iterator[None]:
    """PostgreSQL is down inside the block (fast shutdown: open transactions are cut), and is
    started again when the block ends, whatever happened in it; if the whole test run is killed
    meanwhile, the next run starts it (tests/cluster.py)."""
    found = _cluster()
    cluster.stop(*found)
    try:
        yield
    finally:
        cluster.start(*found)


def execute(pg_url: str, sql: str) -> None:
    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def inserting(pg_url: str) -> bool:
    """Whether another backend is running a COPY or INSERT into audit_logs right now."""
    conn = psycopg2.connect(pg_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()"
                " AND (query ILIKE 'COPY audit_logs%%' OR query ILIKE 'INSERT INTO audit_logs%%')"
            )
            return cur.fetchone()[0] > 0
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
