"""The benchmark: the original design's baselines and flask-audit's own paths, in the same run, on
this machine's Redis and PostgreSQL; medians of --runs runs, printed as a table with ratios.

    python bench/run.py [--events 20000] [--drain-events 100000] [--runs 3]

It creates its own database and Redis keyspace and removes them afterwards. The drain is measured
through real processes: `dramatiq flask_audit.worker` and `flask audit scheduler`.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import peewee
import psycopg2
import redis
from flask import Flask
from werkzeug.test import EnvironBuilder

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask_audit import FlaskAudit
from flask_audit.events.event import FIELDS, AuditEvent, build_event
from flask_audit.storage.pgcopy import copy_text
from flask_audit.storage.store import AuditStore
from tests.processes import Process, python, wait_for

REDIS_URL = os.environ.get("AUDIT_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN = os.environ.get("AUDIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
COLUMNS = ", ".join(FIELDS)
TYPES = [
    ("api_key_created", "info", "api_key"),
    ("api_key_deleted", "info", "api_key"),
    ("api_key_rotated", "info", "api_key"),
    ("usage_warning_80_percent", "warning", "usage_quota"),
    ("usage_warning_90_percent", "warning", "usage_quota"),
    ("usage_limit_reached", "warning", "usage_quota"),
    ("account_upgraded", "info", "account"),
    ("permanent_ban_applied", "critical", "account"),
]


def realistic_kwargs(i: int) -> dict:
    event_type, category, resource = TYPES[i % len(TYPES)]
    return dict(
        event_type=event_type,
        event_category=category,
        user_id=f"user-{i % 5000}",
        resource_type=resource,
        resource_id=f"{resource}-{i % 20000}",
        description=f"{event_type.replace('_', ' ')} for user-{i % 5000}",
        metadata={"key_name": f"key-{i % 97}", "permissions": ["read", "write"], "usage": i % 10000},
        ip_address=f"10.{i % 200}.{i % 250}.{i % 240 + 1}",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0",
        request_id=uuid.UUID(int=i).hex,
    )


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.db = f"audit_bench_{uuid.uuid4().hex[:8]}"
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}:"
        self.admin = psycopg2.connect(PG_ADMIN)
        self.admin.autocommit = True
        self.admin.cursor().execute(f'CREATE DATABASE "{self.db}"')
        self.url = PG_ADMIN.rsplit("/", 1)[0] + "/" + self.db
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.tmp = Path(tempfile.mkdtemp(prefix="audit-bench-"))
        self.store = AuditStore(self.url)
        self.store.create_schema()
        self.pg = psycopg2.connect(self.url)
        self.pg.autocommit = True
        self.events = [build_event(**realistic_kwargs(i)) for i in range(args.events)]
        self.entries = [e.to_entry() for e in self.events]
        self.drain_entries = [build_event(**realistic_kwargs(i)).to_entry() for i in range(args.drain_events)]
        self.results: dict[str, list[dict]] = {}

    # -- helpers ---------------------------------------------------------------------------------

    def app(self, **options) -> tuple[Flask, FlaskAudit]:
        app = Flask(f"bench{len(self.results)}", instance_path=str(self.tmp))
        options.setdefault("AUDIT_REDIS_URL", REDIS_URL)
        options.setdefault("AUDIT_KEY_PREFIX", self.prefix)
        options.setdefault("AUDIT_DATABASE_URL", self.url)
        options.setdefault("AUDIT_MAX_QUEUE_LENGTH", 10_000_000)
        return app, FlaskAudit(app, **options)

    def reset(self) -> None:
        self.pg.cursor().execute("TRUNCATE audit_logs")
        keys = list(self.redis.scan_iter(match=self.prefix + "*", count=1000))
        if keys:
            self.redis.delete(*keys)

    def count(self) -> int:
        with self.pg.cursor() as cur:
            cur.execute("SELECT count(*) FROM audit_logs")
            return cur.fetchone()[0]

    def record(self, name: str, **values) -> None:
        self.results.setdefault(name, []).append(values)

    # -- request side ----------------------------------------------------------------------------

    def request_side(self) -> None:
        """audit.log in a request vs a bare capped Lua push of the same event (orjson), interleaved
        call by call so that both see the same machine."""
        self.reset()
        app, audit = self.app()
        queue = audit.runtime(app).queue
        bapp, baudit = self.app(AUDIT_BUFFERED=True, AUDIT_BUFFER_FLUSH_MS=5)
        kwargs = [realistic_kwargs(i) for i in range(self.args.events)]
        for kw in kwargs:
            for key in ("ip_address", "user_agent", "request_id"):
                kw.pop(key)
        bare, ours, buffered = [], [], []
        headers = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0", "X-Request-ID": "bench-1"}
        with app.test_request_context("/", headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"}):
            for i, kw in enumerate(kwargs):
                event = self.events[i]
                t0 = time.perf_counter_ns()
                queue.push(
                    [orjson.dumps({**event.to_row(), "created_at": event.created_at.isoformat(), "v": 1})]
                )
                t1 = time.perf_counter_ns()
                audit.log(**kw)
                t2 = time.perf_counter_ns()
                bare.append(t1 - t0)
                ours.append(t2 - t1)
        with bapp.test_request_context("/", headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"}):
            for kw in kwargs:
                t0 = time.perf_counter_ns()
                baudit.log(**kw)
                buffered.append(time.perf_counter_ns() - t0)
            # close() flushes and stops the flush thread, whose wake-ups would otherwise take the
            # GIL in the middle of the measurements that follow
            baudit.runtime(bapp).buffer.close()
        for name, samples in (("bare", bare), ("log", ours), ("buffered", buffered)):
            self.record(
                name,
                rate=len(samples) / (sum(samples) / 1e9),
                p50=percentile(samples, 0.5) / 1000,
                p99=percentile(samples, 0.99) / 1000,
            )
        assert audit.runtime(app).queue.depth() == 3 * len(kwargs)

        # The hooks: a request that logs nothing, through the WSGI app with and without the
        # extension, interleaved; the same environ each time.
        plain = Flask("plain")
        plain.add_url_rule("/ping", "ping", lambda: "ok")
        app.add_url_rule("/ping", "ping", lambda: "ok")
        environ = EnvironBuilder(path="/ping", headers={"User-Agent": "bench"}).get_environ()

        def call(wsgi) -> int:
            t0 = time.perf_counter_ns()
            for _ in wsgi(dict(environ), lambda status, headers, exc_info=None: None):
                pass
            return time.perf_counter_ns() - t0

        # Paired: each iteration times both (in alternating order) and keeps the difference, so
        # that the machine's drift between iterations cancels out.
        differences, plain_times = [], []
        for i in range(20_000):
            if i % 2:
                without, with_ext = call(plain.wsgi_app), call(app.wsgi_app)
            else:
                with_ext, without = call(app.wsgi_app), call(plain.wsgi_app)
            differences.append(with_ext - without)
            plain_times.append(without)
        self.record(
            "hooks", p50=percentile(differences, 0.5) / 1000, plain=percentile(plain_times, 0.5) / 1000
        )

    # -- database baselines ----------------------------------------------------------------------

    def insert_per_event(self) -> None:
        self.reset()
        rows = [self._row(e) for e in self.events]
        sql = f"INSERT INTO audit_logs ({COLUMNS}) VALUES ({', '.join(['%s'] * len(FIELDS))})"
        samples = []
        with self.pg.cursor() as cur:
            for row in rows:
                t0 = time.perf_counter_ns()
                cur.execute(sql, row)
                samples.append(time.perf_counter_ns() - t0)
        self.record(
            "insert1",
            rate=len(rows) / (sum(samples) / 1e9),
            p50=percentile(samples, 0.5) / 1000,
            p99=percentile(samples, 0.99) / 1000,
        )

    def insert_many(self) -> None:
        self.reset()
        database = peewee.PostgresqlDatabase(self.db, host="127.0.0.1", user="postgres")
        model = self.store.model
        rows = [e.to_row() for e in self.events]
        with database.bind_ctx([model]):
            t0 = time.perf_counter()
            for start in range(0, len(rows), 1000):
                with database.atomic():
                    model.insert_many(rows[start : start + 1000]).on_conflict_ignore().execute()
            elapsed = time.perf_counter() - t0
        database.close()
        assert self.count() == len(rows)
        self.record("insert_many", rate=len(rows) / elapsed)

    def copy_staging(self) -> None:
        self.reset()
        texts = [
            copy_text([e.to_row() for e in self.events[s : s + 1000]]).getvalue()
            for s in range(0, len(self.events), 1000)
        ]
        elapsed = self._copy_staging(texts)
        self.record("copy_staging", rate=len(self.events) / elapsed)

    def ceiling(self) -> None:
        """Lua pop of 1,000 + decode + COPY through staging, one process, no Dramatiq."""
        self.reset()
        key = self.prefix + "ceiling"
        for start in range(0, len(self.entries), 1000):
            self.redis.lpush(key, *self.entries[start : start + 1000])
        t0 = time.perf_counter()
        while True:
            popped = self.redis.rpop(key, 1000)
            if not popped:
                break
            rows = []
            for raw in popped:
                row = orjson.loads(raw)
                row.pop("v")
                rows.append(row)
            self._copy_staging([copy_text(rows).getvalue()])
        elapsed = time.perf_counter() - t0
        assert self.count() == len(self.entries)
        self.record("ceiling", rate=len(self.entries) / elapsed)

    def _copy_staging(self, texts: list[str]) -> float:
        cur = self.pg.cursor()
        t0 = time.perf_counter()
        for text in texts:
            cur.execute("BEGIN")
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS staging (LIKE audit_logs INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            cur.copy_expert(f"COPY staging ({COLUMNS}) FROM STDIN", io.StringIO(text))
            cur.execute(
                f"INSERT INTO audit_logs ({COLUMNS}) SELECT {COLUMNS} FROM staging ON CONFLICT (event_id) DO NOTHING"
            )
            cur.execute("COMMIT")
        return time.perf_counter() - t0

    def _row(self, event: AuditEvent) -> tuple:
        row = event.to_row()
        row["metadata"] = orjson.dumps(row["metadata"]).decode()
        return tuple(row[f] for f in FIELDS)

    # -- through Dramatiq ------------------------------------------------------------------------

    def naive_dramatiq(self) -> None:
        """One message per event, worker 1 process x 4 threads."""
        self.reset()
        n = min(self.args.events, self.args.naive_events)
        namespace = self.prefix + "naive"
        env = dict(
            os.environ, BENCH_REDIS_URL=REDIS_URL, BENCH_NAMESPACE=namespace, BENCH_DATABASE_URL=self.url
        )
        sys.path.insert(0, str(ROOT))
        os.environ.update(BENCH_REDIS_URL=REDIS_URL, BENCH_NAMESPACE=namespace, BENCH_DATABASE_URL=self.url)
        from bench import naive_worker

        for entry in self.entries[:n]:
            naive_worker.naive_insert.send(entry.decode())
        worker = Process(
            "naive",
            python("-m", "dramatiq", "bench.naive_worker", "--processes", "1", "--threads", "4"),
            env,
            self.tmp,
        )
        try:
            wait_for(lambda: self.count() > 0, 60, "the first naive insert")
            t0, n0 = time.perf_counter(), self.count()
            wait_for(lambda: self.count() >= n, 300, "the naive worker", interval=0.05)
            self.record("naive", rate=(n - n0) / (time.perf_counter() - t0))
        finally:
            worker.stop()

    def drain(self, processes: int, worker: Process | None = None) -> Process:
        """The real actor and clock: backlog loaded first, then the clock starts; the rate runs
        from the first row stored to the last."""
        self.reset()
        n = len(self.drain_entries)
        env = dict(
            os.environ,
            FLASK_APP="examples.app",
            AUDIT_REDIS_URL=REDIS_URL,
            AUDIT_KEY_PREFIX=self.prefix,
            AUDIT_DATABASE_URL=self.url,
            AUDIT_MAX_QUEUE_LENGTH="10000000",
        )
        if worker is None:
            worker = Process(
                f"worker{processes}",
                python(
                    "-m", "dramatiq", "flask_audit.worker", "--processes", str(processes), "--threads", "4"
                ),
                env,
                self.tmp,
            )
            time.sleep(2)
        app, audit = self.app()
        queue = audit.runtime(app).background_queue
        for start in range(0, n, 1000):
            queue.push(self.drain_entries[start : start + 1000])
        before = audit.runtime(app).background_metrics.snapshot().totals
        clock = Process("clock", python("-m", "flask", "audit", "scheduler"), env, self.tmp)
        try:
            wait_for(lambda: self.count() > 0, 60, "the first drained batch", interval=0.01)
            t0, n0 = time.perf_counter(), self.count()
            wait_for(lambda: self.count() >= n, 300, "the drain", interval=0.02)
            elapsed = time.perf_counter() - t0
        finally:
            clock.stop()
        after = audit.runtime(app).background_metrics.snapshot().totals
        children = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-P", str(worker.pid)], capture_output=True, text=True
            ).stdout.split()
        ]
        self.record(
            f"drain{processes}",
            rate=(n - n0) / elapsed,
            statements=(after["db_statements"] - before["db_statements"]) / n * 10_000,
            rss=sum(rss_kb(pid) for pid in children) / 1024,
        )
        return worker

    def close(self) -> None:
        self.pg.close()
        self.store.close()
        self.admin.cursor().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (self.db,)
        )
        self.admin.cursor().execute(f'DROP DATABASE IF EXISTS "{self.db}"')
        keys = list(self.redis.scan_iter(match=self.prefix + "*", count=1000))
        if keys:
            self.redis.delete(*keys)


def med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--drain-events", type=int, default=100_000)
    parser.add_argument(
        "--naive-events", type=int, default=5_000, help="events for the one-message-per-event baseline"
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bench = Bench(args)
    workers: dict[int, Process] = {}
    try:
        # The fixtures are built: keep the collector from walking them in every measurement.
        gc.collect()
        gc.freeze()
        # In-process measurements first, while no worker process is running beside them.
        for run in range(args.runs):
            print(f"in-process run {run + 1}/{args.runs}", file=sys.stderr)
            bench.request_side()
            bench.insert_per_event()
            bench.insert_many()
            bench.copy_staging()
            bench.ceiling()
        for run in range(args.runs):
            print(f"process run {run + 1}/{args.runs}", file=sys.stderr)
            bench.naive_dramatiq()
            for processes in (1, 2):
                workers[processes] = bench.drain(processes, workers.get(processes))
        report(bench.results, args)
    finally:
        for worker in workers.values():
            worker.stop()
        bench.close()
    return 0


def report(r: dict[str, list[dict]], args: argparse.Namespace) -> None:
    naive = med(r["naive"], "rate")
    bare50 = med(r["bare"], "p50")
    print(
        f"\n{args.events:,} realistic events, {args.drain_events:,} for the drain; medians of {args.runs} runs; "
        f"{os.cpu_count()} cores, PostgreSQL and Redis on loopback\n"
    )
    print("| measure | events/s | p50 µs | p99 µs | ratio |")
    print("|---|---:|---:|---:|---|")
    rows = [
        ("baseline: Lua capped push, one event per call (redis-py, orjson)", "bare", True, ""),
        ("baseline: one INSERT per event, autocommit", "insert1", True, ""),
        ("baseline: one Dramatiq message per event, 1 process x 4 threads", "naive", False, "1.0x"),
        ("baseline: Peewee insert_many, 1,000 per batch, on conflict ignore", "insert_many", False, ""),
        ("baseline: COPY 1,000 per batch via staging + ON CONFLICT DO NOTHING", "copy_staging", False, ""),
        ("ceiling: Lua pop 1,000 + decode + that COPY, one process, no Dramatiq", "ceiling", False, ""),
    ]
    for label, key, latency, ratio in rows:
        p50 = f"{med(r[key], 'p50'):,.0f}" if latency else ""
        p99 = f"{med(r[key], 'p99'):,.0f}" if latency else ""
        print(f"| {label} | {med(r[key], 'rate'):,.0f} | {p50} | {p99} | {ratio} |")
    log50, log99 = med(r["log"], "p50"), med(r["log"], "p99")
    print(
        f"| **audit.log in a request, event in Redis on return** | {med(r['log'], 'rate'):,.0f} | {log50:,.0f} | "
        f"{log99:,.0f} | p50 {log50 / bare50:.2f}x the bare push (target <= 1.3x); p99 target < 500 µs |"
    )
    buf50 = med(r["buffered"], "p50")
    print(
        f"| **audit.log, AUDIT_BUFFERED** | {med(r['buffered'], 'rate'):,.0f} | {buf50:,.1f} | "
        f"{med(r['buffered'], 'p99'):,.0f} | target p50 < 20 µs |"
    )
    print(
        f"| **request hooks, a request that logs nothing** | | {med(r['hooks'], 'p50'):,.1f} | | over a plain "
        f"Flask request of {med(r['hooks'], 'plain'):,.0f} µs (target < 15 µs) |"
    )
    for processes in (1, 2):
        rows_ = r[f"drain{processes}"]
        rate = med(rows_, "rate")
        print(
            f"| **drain: `dramatiq flask_audit.worker` {processes} process(es) x 4 threads + clock** | {rate:,.0f} | | | "
            f"{rate / naive:.0f}x the one-message-per-event baseline; {med(rows_, 'statements'):.1f} "
            f"INSERT/COPY per 10,000 events; worker RSS by run: "
            f"{', '.join(format(x['rss'], '.0f') for x in rows_)} MiB |"
        )


if __name__ == "__main__":
    sys.exit(main())
