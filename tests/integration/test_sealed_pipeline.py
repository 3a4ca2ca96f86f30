"""Sealing under the real pipeline: two worker processes drain concurrently (ids commit out of
order), critical events are written directly, the clock seals as it goes; then `flask audit
verify`, run as an operator runs it, finds every row sealed and intact, and names a tampered one."""

from __future__ import annotations

import json
import subprocess

import psycopg2

from tests.processes import python, wait_for


def counts(pg_url: str) -> tuple[int, int]:
    conn = psycopg2.connect(pg_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM audit_logs")
            stored = cur.fetchone()[0]
            cur.execute("SELECT coalesce(sum(row_count), 0) FROM audit_seals WHERE kind = 'rows'")
            sealed = cur.fetchone()[0]
        return int(stored), int(sealed)
    finally:
        conn.close()


def test_rows_drained_by_several_workers_are_all_sealed_and_verify(make_app, service_env, spawn, pg_url):
    env = dict(
        service_env,
        AUDIT_SIGNING_KEY="integration-key",
        AUDIT_SEAL_INTERVAL_SECONDS="0.3",
        AUDIT_DRAIN_INTERVAL_SECONDS="0.1",
    )
    app, audit = make_app(
        AUDIT_REDIS_URL=env["AUDIT_REDIS_URL"],
        AUDIT_KEY_PREFIX=env["AUDIT_KEY_PREFIX"],
        AUDIT_DATABASE_URL=pg_url,
        AUDIT_SIGNING_KEY="integration-key",
    )
    worker = python("-m", "dramatiq", "worker", "--processes", "1", "--threads", "4")
    spawn("worker-1", worker, env)
    spawn("worker-2", worker, env)
    spawn("clock", python("-m", "flask", "audit", "scheduler"), env)
    expected = 0
    with app.app_context():
        for round_ in range(10):
            for i in range(300):
                audit.log("api_key_created", user_id=f"{round_}-{i}", metadata={"i": i})
            audit.critical("permanent_ban_applied", user_id=str(round_))
            expected += 301
    wait_for(lambda: counts(pg_url) == (expected, expected), 60, f"{expected} rows stored and sealed")
    verify = subprocess.run(
        python("-m", "flask", "audit", "verify", "--json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(verify.stdout)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert (report["ok"], report["rows"], report["unsealed_rows"], report["unsigned_seals"]) == (
        True,
        expected,
        0,
        0,
    )
    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE audit_logs SET description = 'rewritten' WHERE id = (SELECT max(id) / 2 FROM audit_logs)"
        )
    conn.close()
    verify = subprocess.run(
        python("-m", "flask", "audit", "verify"), env=env, capture_output=True, text=True, timeout=120
    )
    assert verify.returncode == 1
    assert "row_changed: row" in verify.stdout and verify.stdout.strip().endswith(
        f"TAMPERED: {expected - 1} rows in {report['seals']} seals verified"
    )


def test_verify_shows_a_progress_bar_on_a_terminal_and_not_in_a_pipe(make_app, service_env, pg_url):
    import os
    import pty

    app, audit = make_app(
        AUDIT_REDIS_URL=service_env["AUDIT_REDIS_URL"],
        AUDIT_KEY_PREFIX=service_env["AUDIT_KEY_PREFIX"],
        AUDIT_DATABASE_URL=pg_url,
    )
    runtime = audit.runtime(app)
    with app.app_context():
        for i in range(50):
            audit.critical("permanent_ban_applied", user_id=str(i))
    from flask_audit.integrity.sealer import seal_pending

    seal_pending(runtime.store, runtime.signer)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            python("-m", "flask", "audit", "verify"),
            env=service_env,
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=120,
        )
        os.close(follower)
        follower = -1
        screen = b""
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            screen += data
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert (
        proc.returncode == 0
        and proc.stdout.strip()
        == "intact: 50 rows in 1 seals verified (1 seals unsigned: no AUDIT_SIGNING_KEY when they were made)"
    )
    assert b"verifying" in screen and b"100%" in screen
    piped = subprocess.run(
        python("-m", "flask", "audit", "verify"), env=service_env, capture_output=True, text=True, timeout=120
    )
    assert piped.returncode == 0 and "verifying" not in piped.stderr
