"""The pipeline's CPU per event at a steady arrival rate, with no web server in the way: events
reach Redis as buffered web processes send them (a flush every 50 ms), and the real worker
(`dramatiq flask_audit.worker`, 1 process x 2 threads) and clock (`flask audit scheduler`) move
them into a fresh PostgreSQL database. Reports, per event, the CPU of the worker, the clock,
Redis and PostgreSQL (from /proc/<pid>/stat, the drain of the last events included), and the
events per batch, for each setting given, the settings taking turns every round.

    make bench-pipeline   # or: python bench/pipeline.py [--rate 3000] [--duration 10] [--rounds 3]

Without a web server and wrk the figures move far less between rounds than bench/load.py's
totals, so a change of a few microseconds per event in the drain shows here. The default
settings compare the clock's batch sizing by traffic and depth (the default) with the depth
alone (``AUDIT_TRAFFIC_TIERS=0:100``); ``--setting NAME=K=V`` (repeatable) gives others.
``--against REV`` runs each setting on revision REV's package as well (``git archive``): its
``flask audit init-db`` makes the schema and its worker and clock drain, the two trees taking
turns within every round; the feeder is this tree's (queue entries are versioned alike).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median

import redis
from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import (
    REDIS_URL,
    cpu_by_group,
    create_database,
    drain_processes,
    drop_database,
    init_db,
    on_tree,
    process_cpu,
)
from bench.revisions import package_of
from flask_audit import FlaskAudit
from tests.processes import wait_for

#: seconds between two pushes of the feeder, as AUDIT_BUFFER_FLUSH_MS's default
FLUSH_SECONDS = 0.05
PARTS = ("dramatiq worker", "clock", "redis", "postgresql")
DEFAULT_SETTINGS = {
    "traffic and depth (default)": {},
    "depth alone (AUDIT_TRAFFIC_TIERS=0:100)": {"AUDIT_TRAFFIC_TIERS": "0:100"},
}


def feed(audit: FlaskAudit, app: Flask, rate: int, duration: float, users: int = 0) -> int:
    """Queue ``rate`` events a second for ``duration`` seconds, a flush every 50 ms; returns how
    many were queued. With ``users``, each event has one of that many user ids (else none)."""
    runtime = audit.runtime(app)
    per_flush = max(1, round(rate * FLUSH_SECONDS))
    sent = 0
    start = time.monotonic()
    with app.test_request_context("/api/v1/keys", headers={"User-Agent": "bench", "X-User-ID": "42"}):
        while time.monotonic() - start < duration:
            for i in range(per_flush):
                audit.log(
                    "api_key_created",
                    user_id=str((sent + i) % users) if users else None,
                    resource_type="api_key",
                    resource_id=str(i),
                    metadata={"n": i},
                )
            sent += runtime.buffer.flush()
            pause = (sent / rate) - (time.monotonic() - start)
            if pause > 0:
                time.sleep(pause)
    return sent


def run(
    label: str,
    extra: dict[str, str],
    rate: int,
    duration: float,
    logs: Path,
    package: Path | None = None,
    users: int = 0,
) -> dict:
    """One setting, once: a database and keyspace of its own, worker and clock started and
    stopped by PID. With ``package`` (another revision's ``flask_audit``) the schema, the worker
    and the clock are that revision's: each runs from its directory, so its package comes first."""
    db, url_db = create_database("audit_pipeline")
    prefix = f"pipeline-{uuid.uuid4().hex[:8]}:"
    options = {
        "AUDIT_REDIS_URL": REDIS_URL,
        "AUDIT_KEY_PREFIX": prefix,
        "AUDIT_DATABASE_URL": url_db,
        "AUDIT_SPOOL_PATH": str(logs / f"{db}.spool"),
    }
    env = {**os.environ, "FLASK_APP": "bench.load_app:create_app()", **options, **extra}
    cwd = on_tree(env, package)
    app = Flask(f"pipeline_{db}", instance_path=str(logs / db))
    audit = FlaskAudit(
        app,
        **options,
        AUDIT_BUFFERED=True,
        AUDIT_BUFFER_FLUSH_MS=3_600_000,  # the feeder flushes, on its own schedule
        AUDIT_BUFFER_MAX_EVENTS=1_000_000,
    )
    init_db(env, cwd)
    procs = drain_processes(env, logs, cwd)
    client = redis.Redis.from_url(REDIS_URL)
    store = audit.runtime(app).store
    try:
        wait_for(lambda: client.hlen(prefix + "workers") > 0, 60, "the worker's heartbeat")
        feed(audit, app, rate, 1.0)  # warm-up: both processes have drained and sealed once
        wait_for(lambda: store.count() > 0 and client.llen(prefix + "queue") == 0, 60, "the warm-up")
        time.sleep(6)  # past the first seal
        stored_before = store.count()
        totals = client.hgetall(prefix + "metrics")
        batches_before = int(totals.get(b"batches", 0))
        before = cpu_by_group(process_cpu())
        sent = feed(audit, app, rate, duration, users)
        wait_for(lambda: store.count() >= stored_before + sent, 120, "every event stored", interval=0.2)
        after = cpu_by_group(process_cpu())
        batches = int(client.hget(prefix + "metrics", "batches") or 0) - batches_before
    finally:
        for proc in procs:
            proc.stop()
        store.close()
        drop_database(db)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    per_event = {part: (after[part] - before[part]) / sent * 1e6 for part in PARTS}
    return {"label": label, "sent": sent, "per_batch": sent / batches if batches else 0.0, **per_event}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=3000, help="events a second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of feeding a run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        help="LABEL=KEY=VALUE[,KEY=VALUE]: an environment for worker and clock (repeatable)",
    )
    parser.add_argument("--against", metavar="REV", help="run each setting on this revision's package too")
    parser.add_argument(
        "--users", type=int, default=0, help="give each event one of N user ids (default: none)"
    )
    args = parser.parse_args()
    settings = DEFAULT_SETTINGS
    if args.setting:
        settings = {}
        for item in args.setting:
            label, _, pairs = item.partition("=")
            settings[label] = dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
    # label prefix -> the package to run (None: this tree's); with --against, the two take turns
    trees: dict[str, Path | None] = {"": None}
    if args.against:
        trees = {f"{args.against}: ": package_of(args.against), "this tree: ": None}
    logs = Path(tempfile.mkdtemp(prefix="audit-pipeline-"))
    results: dict[str, list[dict]] = {tree + label: [] for label in settings for tree in trees}
    for _ in range(args.rounds):
        for label, extra in settings.items():
            for tree, package in trees.items():
                results[tree + label].append(
                    run(label, extra, args.rate, args.duration, logs, package, args.users)
                )
    print(
        f"\n{args.rate:,} events/s for {args.duration:g} s, flushed every 50 ms,"
        f" {f'user ids of {args.users:,} users' if args.users else 'no user id'}; {args.rounds} rounds, medians"
        " (lowest-highest); CPU per event, µs, the drain of the last events included\n"
    )
    print("| setting | events per batch | worker | clock | Redis | PostgreSQL | pipeline |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, runs in results.items():
        for r in runs:
            r["pipeline"] = sum(r[part] for part in PARTS)

        def cell(key: str, runs: list[dict] = runs) -> str:
            values = [r[key] for r in runs]
            return f"{median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

        per_batch = median(r["per_batch"] for r in runs)
        parts = " | ".join(cell(part) for part in (*PARTS, "pipeline"))
        print(f"| {label} | {per_batch:.0f} | {parts} |")
    print(f"\nlogs: {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
