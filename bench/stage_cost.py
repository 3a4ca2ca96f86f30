"""The pipeline's own Python work per event, counted in instructions: the drain (what the worker
does with a batch: claim, decode, COPY, settle) and sealing (what the clock does with stored
rows: fetch, canonical form, leaf and node hashes, the seal), each against a real Redis and a
fresh PostgreSQL database.

    make bench-stages   # or: python bench/stage_cost.py [--n 3200] [--against REV]

Counted under valgrind's callgrind, as ``bench/request_cost.py --instructions`` counts a request:
each stage runs in processes of N and of 3N events, and the difference over the extra 2N events
is its cost per event, start-up cancelled out; the setup of the same sizes (entries built and
pushed, rows inserted) is counted alike without the stage and taken off. The count does not move
with the machine's speed, which here moved a plain request's CPU by a quarter between two runs
of ``bench/load.py`` minutes apart, so it tells a change of the drain or the sealer apart from
the hour it was measured in. It leaves out what Redis, PostgreSQL and the kernel do, and
Dramatiq's and APScheduler's own work per message and per job (``bench/pipeline.py`` has those,
in µs). ``--against REV`` counts revision REV's package (``git archive``) the same way.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for bench.*; appended, so that a PYTHONPATH's flask_audit comes first

from bench.revisions import package_of

REDIS_URL = os.environ.get("AUDIT_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN = os.environ.get("AUDIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
#: what callgrind prints of the instructions it counted
COLLECTED = re.compile(rb"Collected : (\d+)")
STAGES = ("drain", "seal")
#: events per drained batch: what the load bench's batches hold at a few thousand events a second
BATCH = 640


def child(stage: str, n: int, setup_only: bool) -> None:
    """In a process of its own: a fresh database and key prefix, N events of ``stage``'s input,
    then (unless ``setup_only``) the stage over all of them."""
    import psycopg2
    import redis
    from flask import Flask

    from flask_audit.config import load_config
    from flask_audit.events.event import build_event
    from flask_audit.storage.store import AuditStore

    db = f"stage_cost_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{db}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    prefix = f"stage-cost-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(REDIS_URL)
    store = AuditStore(url)
    try:
        store.create_schema()
        if stage == "drain":
            from flask_audit.pipeline.drain import Drainer
            from flask_audit.queue.redis_queue import AuditQueue

            overrides = {
                "AUDIT_KEY_PREFIX": prefix,
                "AUDIT_DATABASE_URL": url,
                "AUDIT_REDIS_URL": REDIS_URL,
                "AUDIT_MAX_QUEUE_LENGTH": 10 * n,
            }
            queue = AuditQueue(client, load_config(Flask(__name__), overrides))
            entries = [
                build_event(
                    "page_viewed",
                    user_id="load-user",
                    resource_type="page",
                    resource_id="1",
                    ip_address="127.0.0.1",
                    user_agent="wrk/4.2",
                    request_id=uuid.uuid4().hex,
                ).to_entry()
                for _ in range(n)
            ]
            for start in range(0, n, 1000):
                queue.push(entries[start : start + 1000])
            if not setup_only:
                drained = Drainer(queue, store).drain_all(BATCH)
                assert drained.inserted == n, drained
        else:
            from flask_audit.integrity.sealer import seal_pending
            from flask_audit.integrity.seals import Signer, create_table

            create_table(store)
            # the rows the load bench's app stores, made in SQL: the setup does no Python work per row
            store.database.execute_sql(
                "INSERT INTO audit_logs (event_id, created_at, event_type, event_category, user_id,"
                " resource_type, resource_id, ip_address, user_agent, request_id, outcome)"
                " SELECT gen_random_uuid(), now() + g * interval '1 microsecond', 'page_viewed',"
                " 'info', 'load-user', 'page', '1', '127.0.0.1', 'wrk/4.2', md5(g::text), 'success'"
                " FROM generate_series(1, %s) g",
                (n,),
            )
            if not setup_only:
                sealed = 0
                while True:
                    done = seal_pending(store, Signer(None, None), seconds=3600)
                    if not done:
                        break
                    sealed += done
                assert sealed == n, sealed
    finally:
        store.close()
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        admin.cursor().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,)
        )
        admin.cursor().execute(f'DROP DATABASE "{db}"')
        admin.close()


def counted(stage: str, n: int, setup_only: bool, package: Path | None) -> int:
    """The instructions of one child process, under callgrind."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    if package is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package), env.get("PYTHONPATH", "")])
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--child", stage, "--n", str(n)]
    if setup_only:
        command.append("--setup-only")
    done = subprocess.run(
        command, env=env, cwd=package or ROOT, capture_output=True, check=True, timeout=3600
    )
    found = COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count: {done.stderr[-500:]!r}")
    return int(found.group(1))


def per_event(stage: str, n: int, package: Path | None) -> float:
    """Instructions per event of ``stage``: (3N - N) with the stage, less (3N - N) of the setup."""
    with_stage = counted(stage, 3 * n, False, package) - counted(stage, n, False, package)
    setup = counted(stage, 3 * n, True, package) - counted(stage, n, True, package)
    return (with_stage - setup) / (2 * n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=3200, help="events of the smaller process (the larger has 3N)"
    )
    parser.add_argument("--against", help="a git revision whose package is counted too")
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--setup-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.setup_only)
        return 0
    if shutil.which("valgrind") is None:
        print("needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    trees: dict[str, Path | None] = {"this tree": None}
    if args.against:
        trees = {args.against: package_of(args.against), **trees}
    counts = {
        (tree, stage): per_event(stage, args.n, package)
        for tree, package in trees.items()
        for stage in STAGES
    }
    print(
        f"\nPython instructions per event (callgrind; {args.n:,} and {3 * args.n:,} events, the difference"
        f" over {2 * args.n:,}, setup taken off; drained in batches of {BATCH})\n"
    )
    print("| tree | drain (worker) | sealing (clock) |")
    print("|---|---:|---:|")
    for tree in trees:
        print(f"| {tree} | {counts[(tree, 'drain')]:,.0f} | {counts[(tree, 'seal')]:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
