"""Tamper evidence, measured on the real PostgreSQL: what sealing costs the drain, how fast rows
are sealed and verified, and how long a proof takes at a million rows. Prints a table.

    python bench/integrity.py                 # 1,000,000 rows (a few minutes)
    python bench/integrity.py --rows 100000   # quicker

The drain is timed in alternating rounds, with the clock's sealer running beside it (every 0.5 s,
as a busy clock would) and without it, so that both see the same machine.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg2
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_audit.events.event import build_event
from flask_audit.integrity import proofs
from flask_audit.integrity.sealer import seal_pending
from flask_audit.integrity.seals import Signer
from flask_audit.integrity.verify import verify
from flask_audit.pipeline.drain import Drainer
from flask_audit.queue.redis_queue import AuditQueue
from flask_audit.storage.store import AuditStore

PG_ADMIN = os.environ.get("AUDIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("AUDIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def event(i: int):
    return build_event(
        "api_key_created",
        user_id=str(i % 5000),
        resource_type="api_key",
        resource_id=f"key_{i}",
        description="API key created for CI",
        metadata={"key_name": "ci", "scopes": ["read", "write"], "n": i},
        ip_address="203.0.113.7",
        user_agent="Mozilla/5.0 (X11; Linux x86_64)",
        request_id=uuid.uuid4().hex,
    )


def database(name: str) -> str:
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop(name: str) -> None:
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` so far: the database backend's share of sealing,
    which the machine's speed moves less than the wall time."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain_rate(store: AuditStore, queue: AuditQueue, entries: list[bytes], sealing: bool) -> float:
    """Rows per second for one drain of ``entries``, optionally with a sealer beside it."""
    queue.push(entries)
    stop = threading.Event()
    sealer_store = AuditStore(store.url)

    def seal_forever() -> None:
        while not stop.wait(0.5):
            seal_pending(sealer_store, Signer("bench-key"))

    thread = threading.Thread(target=seal_forever, daemon=True)
    if sealing:
        thread.start()
    drainer = Drainer(queue, store)
    started = time.perf_counter()
    drainer.drain_all(1000)
    elapsed = time.perf_counter() - started
    stop.set()
    if sealing:
        thread.join()
    seal_pending(sealer_store, Signer("bench-key"))  # both modes leave the table sealed
    sealer_store.close()
    return len(entries) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the seal/verify/proof figures")
    parser.add_argument("--drain-events", type=int, default=20_000, help="events per drain round")
    parser.add_argument("--rounds", type=int, default=4, help="drain rounds per mode, alternating")
    args = parser.parse_args()

    name = f"flask_audit_bench_{uuid.uuid4().hex[:8]}"
    url = database(name)
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        from flask import Flask

        from flask_audit.config import load_config

        store = AuditStore(url)
        store.create_schema()
        config = load_config(
            Flask("bench"), {"AUDIT_KEY_PREFIX": prefix, "AUDIT_MAX_QUEUE_LENGTH": 10_000_000}
        )
        queue = AuditQueue(client, config)
        rates: dict[bool, list[float]] = {False: [], True: []}
        for round_ in range(args.rounds):
            for sealing in (round_ % 2 == 0, round_ % 2 == 1):
                entries = [event(i).to_entry() for i in range(args.drain_events)]
                rates[sealing].append(drain_rate(store, queue, entries, sealing))

        lock_samples = []
        for _ in range(200):
            started = time.perf_counter()
            with store.database.atomic():
                store.database.execute_sql("SELECT pg_advisory_xact_lock_shared(1096107091)")
            lock_samples.append(time.perf_counter() - started)

        have = store.count()
        batch = [event(i) for i in range(10_000)]
        while have < args.rows:
            fresh = [build_event(e.event_type, metadata=e.metadata, user_id=e.user_id) for e in batch]
            have += store.insert(fresh[: args.rows - have])
        backend = store.database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
        started, cpu_started, backend_started = time.perf_counter(), time.process_time(), cpu_seconds(backend)
        sealed = seal_pending(store, Signer("bench-key"), seconds=3600)
        seal_seconds = time.perf_counter() - started
        seal_cpu = time.process_time() - cpu_started
        seal_backend_cpu = cpu_seconds(backend) - backend_started
        started = time.perf_counter()
        report = verify(store, Signer("bench-key"))
        verify_seconds = time.perf_counter() - started
        assert report.ok, report.problems[:3]
        max_id = store.database.execute_sql("SELECT max(id) FROM audit_logs").fetchone()[0]
        proof_ms = []
        for row_id in random.Random(7).sample(range(1, max_id + 1), 200):
            started = time.perf_counter()
            proof = proofs.build(store, row_id)
            proof_ms.append((time.perf_counter() - started) * 1000)
            assert proof is not None
        store.close()

        without, with_ = statistics.median(rates[False]), statistics.median(rates[True])
        print(f"tamper evidence on PostgreSQL, {report.rows:,} rows in {report.seals:,} seals")
        print("| measure | value |")
        print("|---|---|")
        print(f"| drain without sealing (median of {args.rounds}) | {without:,.0f} rows/s |")
        print(f"| drain with the sealer running beside it | {with_:,.0f} rows/s ({with_ / without:.2f}x) |")
        print(
            f"| the shared insert lock, per batch (median) | {statistics.median(lock_samples) * 1e6:.0f} µs |"
        )
        print(f"| sealing | {sealed / seal_seconds:,.0f} rows/s |")
        print(
            f"| sealing, CPU per row: the sealer / its PostgreSQL backend |"
            f" {seal_cpu / sealed * 1e6:.2f} / {seal_backend_cpu / sealed * 1e6:.2f} µs |"
        )
        print(f"| `verify` (every seal and row) | {report.rows / verify_seconds:,.0f} rows/s |")
        p50, p99 = statistics.median(proof_ms), statistics.quantiles(proof_ms, n=100)[98]
        print(f"| proof of one event (200 random rows), p50 / p99 | {p50:.1f} / {p99:.1f} ms |")
        return 0
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        drop(name)


if __name__ == "__main__":
    sys.exit(main())
