"""Operating a large log: EXPLAIN of the query API's questions, export and purge rates, on a table
of ROWS rows (default 1,000,000) in a PostgreSQL database this script creates and drops.

    python bench/operations.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg2
from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_audit import FlaskAudit
from flask_audit.cli.operate import _write
from flask_audit.storage.pgexport import copy_jsonl
from flask_audit.storage.query import Filters, _where, encode_cursor, page, stream
from flask_audit.storage.retention import expire

PG_ADMIN = os.environ.get("AUDIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
#: the newest row; rows go back one minute each from here (1M rows span about 694 days)
END = datetime(2026, 11, 1, tzinfo=timezone.utc)

FILL = """
INSERT INTO audit_logs (event_id, created_at, event_type, event_category, user_id, resource_type,
                        resource_id, description, metadata, ip_address, user_agent, request_id,
                        outcome, tenant_id)
SELECT md5(i::text || %(salt)s)::uuid,
       %(end)s::timestamptz - make_interval(mins => i),
       (ARRAY['api_key_created','api_key_deleted','api_key_rotated','usage_warning_80_percent',
              'usage_limit_reached','account_upgraded','permanent_ban_applied','login'])[1 + i %% 8],
       (ARRAY['info','info','info','warning','warning','info','critical','info'])[1 + i %% 8],
       'user-' || (i %% 5000), 'api_key', (i %% 20000)::text, 'bench row ' || i,
       jsonb_build_object('i', i, 'permissions', jsonb_build_array('read')),
       '10.0.' || (i %% 250) || '.' || (i %% 200), 'bench/1.0', md5((i / 3)::text),
       (ARRAY['success','success','success','success','success','success','success','success',
              'failure','denied'])[1 + i %% 10],
       'tenant-' || (i %% 50)
FROM generate_series(1, %(rows)s) AS i
"""


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def explain(conn, sql: str, params=()) -> tuple[str, float]:
    with conn.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, FORMAT TEXT) " + sql, params)
        lines = [row[0] for row in cur.fetchall()]
    runtime = next((line for line in lines if line.startswith("Execution Time")), "")
    scans = [line.strip().lstrip("-> ").split("  (")[0] for line in lines if "Scan" in line]
    return "; ".join(scans[:2]), float(runtime.split(":")[1].split()[0]) if runtime else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    db = f"audit_ops_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{db}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    try:
        app = Flask("bench_ops", instance_path=f"/tmp/{db}")
        audit = FlaskAudit(
            app,
            AUDIT_DATABASE_URL=url,
            AUDIT_REDIS_URL="redis://127.0.0.1:6379/15",
            AUDIT_API_TOKEN="bench-token",
            AUDIT_VIEWER_SECRET="bench-secret",
        )
        store = audit.runtime(app).store
        store.create_schema()
        conn = psycopg2.connect(url)
        conn.autocommit = True
        _, fill_s = timed(lambda: conn.cursor().execute(FILL, {"rows": args.rows, "end": END, "salt": db}))
        conn.cursor().execute("VACUUM ANALYZE audit_logs")
        print(f"filled {args.rows:,} rows in {fill_s:.1f} s\n")

        sample = store.model.select().order_by(store.model.created_at.desc()).offset(5000).limit(1).get()
        cursor = encode_cursor(sample)
        questions = [
            ("one user's history, newest first", Filters(equal={"user_id": "user-42"})),
            (
                "an event type since a date",
                Filters(equal={"event_type": "login"}, since=END - timedelta(days=30)),
            ),
            ("a resource", Filters(equal={"resource_type": "api_key", "resource_id": "1234"})),
            ("a request id", Filters(equal={"request_id": sample.request_id})),
            ("everything in a week", Filters(since=END - timedelta(days=60), until=END - timedelta(days=53))),
        ]
        print("| question (limit 50) | plan | execution ms | page via API code ms |")
        print("|---|---|---|---|")
        for label, filters in questions:
            query = (
                store.model.select().order_by(store.model.created_at.desc(), store.model.id.desc()).limit(51)
            )
            clauses = _where(store.model, filters)
            sql, params = query.where(*clauses).sql()
            plan, ms = explain(conn, sql, params)
            _, page_s = timed(lambda f=filters: page(store, f, 50, None))
            print(f"| {label} | {plan} | {ms:.2f} | {page_s * 1000:.2f} |")
        _, cursor_s = timed(lambda: page(store, Filters(), 50, cursor))
        print(
            f"| the next page after 5,000 rows (keyset cursor) | index scan on created_at | | {cursor_s * 1000:.2f} |"
        )

        viewer_pages(app, audit, store, sample)

        month = Filters(since=END - timedelta(days=30), until=END)
        everything = Filters()
        print("\n| export | rows | seconds | rows/s | RSS before → after (MiB) |")
        print("|---|---:|---:|---:|---|")
        runs = [
            ("a month, csv (row by row)", lambda: _write("csv", stream(store, month), _Discard(), _none)),
            (
                "a month, jsonl (row by row, the baseline)",
                lambda: _write("jsonl", stream(store, month), _Discard(), _none),
            ),
            (
                "a month, jsonl (made by the server, 3 chunks at once)",
                lambda: copy_jsonl(store, month, _Discard()),
            ),
            (
                "everything, jsonl (row by row, the baseline)",
                lambda: _write("jsonl", stream(store, everything), _Discard(), _none),
            ),
            (
                "everything, jsonl (made by the server, 3 chunks at once)",
                lambda: copy_jsonl(store, everything, _Discard()),
            ),
        ]
        for label, run in runs:
            rss_before = rss_mib()
            count, export_s = timed(run)
            print(
                f"| {label} | {count:,} | {export_s:.2f} | {count / export_s:,.0f} |"
                f" {rss_before:.0f} → {rss_mib():.0f} |"
            )

        cutoff = END - timedelta(days=int(args.rows / 1440 / 2))  # the older half
        result, purge_s = timed(lambda: expire(store, cutoff, chunk=5000))
        print(
            f"purge of the older half ({result.rows_deleted:,} rows, chunks of 5,000): "
            f"{purge_s:.1f} s, {result.rows_deleted / purge_s:,.0f} rows/s"
        )
        conn.close()
        store.close()
    finally:
        admin.cursor().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,)
        )
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}"')
    return 0


def viewer_pages(app: Flask, audit: FlaskAudit, store, sample) -> None:
    """The requests the viewer's pages make, timed at the server (Flask's test client, in this
    process): the median of 5 after one warm-up."""
    client = app.test_client()
    client.get("/audit/?token=bench-token")  # the cookie, as a browser would get it
    with app.app_context():
        tenant_token = audit.viewer_token(tenant_id="tenant-7", expires_in=600)
    tenant_client = app.test_client()
    tenant_client.get(f"/audit/?token={tenant_token}")
    api = "/api/v1/audit-logs"
    week = quote((END - timedelta(days=60)).isoformat())
    week_end = quote((END - timedelta(days=53)).isoformat())
    at = sample.created_at
    first, _ = page(store, Filters(), 50, None)
    deep = encode_cursor(sample)
    around = urlencode(
        {"since": (at - timedelta(hours=1)).isoformat(), "until": (at + timedelta(hours=1)).isoformat()}
    )
    requests = [
        ("the page itself (HTML)", client, "/audit/"),
        ("newest 50", client, f"{api}?limit=50"),
        ("one user", client, f"{api}?user_id=user-42&limit=50"),
        ("an event type since a date", client, f"{api}?event_type=login&since={week}&limit=50"),
        ("outcome denied", client, f"{api}?outcome=denied&limit=50"),
        ("a tenant's viewer (scoped token)", tenant_client, f"{api}?limit=50"),
        ("a tenant and a user", tenant_client, f"{api}?user_id=user-7&limit=50"),
        ("free text in the last 7 days", client, f"{api}?q=row%2012345&limit=50"),
        ("free text in a given week", client, f"{api}?q=row%20123&since={week}&until={week_end}&limit=50"),
        ("a page 5,000 rows deep (cursor)", client, f"{api}?cursor={deep}&limit=50"),
        ("details: the event", client, f"{api}/{first[0].event_id}"),
        ("details: the seal status (unsealed)", client, f"{api}/{first[0].event_id}/seal"),
        (
            "details: the same request, an hour either side",
            client,
            f"{api}?request_id={sample.request_id}&{around}&limit=50",
        ),
        ("event types for the filter", client, f"{api}/event-types"),
    ]
    print(f"\n| viewer request at {store.count():,} rows | status | rows | median ms | slowest ms |")
    print("|---|---|---:|---:|---:|")
    for label, who, url in requests:
        who.get(url)
        times, response = [], None
        for _ in range(5):
            start = time.perf_counter()
            response = who.get(url)
            times.append((time.perf_counter() - start) * 1000)
        body = response.get_json(silent=True) or {}
        count = len(body.get("items", [])) if isinstance(body, dict) else ""
        print(
            f"| {label} | {response.status_code} | {count} | {statistics.median(times):.1f} | {max(times):.1f} |"
        )


class _Discard:
    """Where the export goes: nowhere, so the table measures the export, not a disk."""

    def write(self, data: str | bytes) -> int:
        return len(data)


def _none(_n: int) -> None:
    pass


if __name__ == "__main__":
    sys.exit(main())
