"""Change tracking through the path a user takes: an app process that commits and is SIGKILLed
the instant after, and a `dramatiq` worker process that relays its outbox. The records are there."""

from __future__ import annotations

import subprocess

import psycopg2
import pytest

from tests.processes import python, wait_for

pytest.importorskip("flask_sqlalchemy")


def count(pg_url: str, sql: str) -> int:
    conn = psycopg2.connect(pg_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_a_change_committed_just_before_a_sigkill_is_recorded(service_env, spawn, pg_url):
    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute('DROP TABLE IF EXISTS "order", audit_outbox CASCADE')
    conn.close()
    env = dict(service_env, FLASK_APP="tests.fixtures.tracked_app", TRACKED_DATABASE_URL=pg_url)
    migrated = subprocess.run(
        python("-m", "flask", "audit", "migrate"), env=env, capture_output=True, text=True, timeout=120
    )
    assert "outbox ready" in migrated.stdout, migrated.stdout + migrated.stderr
    killed = subprocess.run(
        python("-m", "tests.fixtures.tracked_app", "250"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9 and "committed" in killed.stdout, killed.stdout + killed.stderr
    assert count(pg_url, 'SELECT count(*) FROM "order"') == 250
    assert count(pg_url, "SELECT count(*) FROM audit_outbox") == 250  # committed with the orders
    spawn("worker", python("-m", "dramatiq", "worker", "--processes", "1", "--threads", "2"), env)
    spawn("clock", python("-m", "flask", "audit", "scheduler"), env)
    created = "SELECT count(*) FROM audit_logs WHERE event_type = 'order_created' AND user_id = 'clerk'"
    wait_for(lambda: count(pg_url, created) == 250, 60, "250 order_created records stored")
    assert count(pg_url, "SELECT count(*) FROM audit_outbox") == 0
    assert (
        count(pg_url, """SELECT count(DISTINCT resource_id) FROM audit_logs WHERE resource_type = 'order'""")
        == 250
    )
