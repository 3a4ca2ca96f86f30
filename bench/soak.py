"""Soak: the example app under gunicorn with a worker and the clock, a steady load of at least
10,000 requests a minute on loopback, the worker restarted every so often (SIGKILL and SIGTERM in
turn), then the ledger. Bounded in time; stops everything it started.

    python bench/soak.py --minutes 3 --rate 200

Needs the Redis and PostgreSQL of AUDIT_REDIS_URL / AUDIT_DATABASE_URL (defaults: this machine's).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.processes import CHROMIUM_FLAGS, Process, gunicorn, listening_socket, python, wait_for

REDIS_URL = os.environ.get("AUDIT_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN = os.environ.get("AUDIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def post(base: str, rid: str, n: int) -> bool:
    """One request that logs exactly one event: mostly an API key created, one in 200 a permanent
    ban (a critical, synchronous event)."""
    path, ok = (f"/api/v1/accounts/u{n}/ban", 200) if n % 200 == 199 else ("/api/v1/keys", 201)
    req = urllib.request.Request(
        base + path,
        data=b'{"name": "soak"}',
        method="POST",
        headers={"Content-Type": "application/json", "X-Request-ID": rid, "X-User-ID": "soak"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status == ok
    except OSError:
        return False


def rss_of_children(pid: int) -> float:
    """Resident memory of a process's children (gunicorn's workers), in MiB."""
    total = 0
    for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def screenshot(url: str, path: str, logs: Path) -> None:
    flags = [*CHROMIUM_FLAGS, "--hide-scrollbars", "--window-size=1300,1150", "--virtual-time-budget=4000"]
    subprocess.run(
        ["chromium", *flags, f"--user-data-dir={logs}/chromium", f"--screenshot={path}", url],
        capture_output=True,
        timeout=120,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (200 = 12,000/min)")
    parser.add_argument("--restart-every", type=float, default=30.0, help="seconds between worker restarts")
    parser.add_argument("--screenshot", help="save a PNG of the dashboard here at the end of the load")
    args = parser.parse_args()

    db = f"audit_soak_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{db}"')
    prefix = f"soak-{uuid.uuid4().hex[:8]}:"
    logs = Path(tempfile.mkdtemp(prefix="audit-soak-"))
    env = dict(
        os.environ,
        FLASK_APP="examples.app",
        AUDIT_REDIS_URL=REDIS_URL,
        AUDIT_KEY_PREFIX=prefix,
        AUDIT_DATABASE_URL=PG_ADMIN.rsplit("/", 1)[0] + "/" + db,
        AUDIT_SPOOL_PATH=str(logs / "spool.jsonl"),  # its own: never replay another run's spool
        AUDIT_VISIBILITY_TIMEOUT_SECONDS="10",
        PYTHONUNBUFFERED="1",
    )
    subprocess.run(python("-m", "flask", "audit", "init-db"), env=env, check=True, capture_output=True)
    sock = listening_socket()  # gunicorn takes it by descriptor: no other process can race for the port
    port = sock.getsockname()[1]
    worker_cmd = python("-m", "dramatiq", "flask_audit.worker", "--processes", "1", "--threads", "4")
    procs = {
        "web": Process(
            "web",
            gunicorn(sock, "examples.app:create_app()"),
            env,
            logs,
            pass_fds=(sock.fileno(),),
        ),
        "clock": Process("clock", python("-m", "flask", "audit", "scheduler"), env, logs),
        "worker": Process("worker", worker_cmd, env, logs),
    }
    sock.close()  # gunicorn holds its own copy
    accepted: list[str] = []
    errors = [0]
    stop = threading.Event()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: post(url, "warmup", 0), 30, "gunicorn")
        accepted.append("warmup")
        threads = 8
        interval = threads / args.rate

        def load(n: int) -> None:
            i, next_at = 0, time.monotonic()
            while not stop.is_set():
                rid = f"s{n}-{i}"
                i += 1
                (accepted.append(rid) if post(url, rid, i) else errors.__setitem__(0, errors[0] + 1))
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))

        pool = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(threads)]
        started = time.monotonic()
        for t in pool:
            t.start()
        web_rss = [rss_of_children(procs["web"].pid)]
        restarts, kill = 0, True
        deadline = started + args.minutes * 60
        while time.monotonic() < deadline:
            time.sleep(min(args.restart_every, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                break
            old = procs["worker"]
            if kill:
                old.signal(signal.SIGKILL)
                old.proc.wait(10)
            else:
                old.stop()
            kill = not kill
            restarts += 1
            procs["worker"] = Process(f"worker{restarts}", worker_cmd, env, logs)
            web_rss.append(rss_of_children(procs["web"].pid))
        web_rss.append(rss_of_children(procs["web"].pid))
        if args.screenshot:
            screenshot(f"http://127.0.0.1:{port}/api/v1/monitoring/dashboard", args.screenshot, logs)
        stop.set()
        for t in pool:
            t.join(10)
        elapsed = time.monotonic() - started
        conn = psycopg2.connect(env["AUDIT_DATABASE_URL"])

        def stored() -> tuple[int, int]:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*), count(DISTINCT event_id) FROM audit_logs")
                return cur.fetchone()

        def missing() -> set[str]:
            with conn.cursor() as cur:
                cur.execute("SELECT request_id FROM audit_logs")
                return set(accepted) - {r[0] for r in cur.fetchall()}

        drained_at = time.monotonic()
        try:
            wait_for(lambda: not missing(), 120, "every accepted request's event", interval=1.0)
        except AssertionError as exc:
            print(exc)
        drain_s = time.monotonic() - drained_at
        rows, distinct = stored()
        lost = missing()
        conn.close()
        print(f"duration            {elapsed:8.1f} s")
        print(f"requests accepted   {len(accepted):8d}  ({len(accepted) / elapsed * 60:,.0f}/min)")
        print(f"requests failed     {errors[0]:8d}")
        print(f"worker restarts     {restarts:8d}  (SIGKILL and SIGTERM in turn)")
        print(
            "web workers' RSS    "
            + ", ".join(f"{mib:.0f}" for mib in web_rss)
            + " MiB (at start, each restart, end)"
        )
        print(f"rows stored         {rows:8d}")
        print(f"distinct event_ids  {distinct:8d}")
        print(f"accepted, not found {len(lost):8d}  (backlog drained {drain_s:.1f} s after the load stopped)")
        # A request that failed on the client's side may still have logged its event.
        balanced = not lost and rows == distinct and 0 <= rows - len(accepted) <= errors[0]
        print(
            "ledger              "
            + ("balanced: every accepted event stored once" if balanced else "NOT balanced")
        )
        return 0 if balanced else 1
    finally:
        stop.set()
        for proc in procs.values():
            proc.stop()
        admin.cursor().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,)
        )
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}"')
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


if __name__ == "__main__":
    sys.exit(main())
