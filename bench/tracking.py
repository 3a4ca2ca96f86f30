"""What recording model changes adds to an application's commit, on PostgreSQL, side by side:
no recording (the baseline), flask-audit-logger's triggers, and flask-audit's change tracking
(ORM mode and trigger mode), all on the same model in the same run.

    pip install -e '.[sqlalchemy,bench]'; python bench/tracking.py [--rows 10000] [--rounds 3]

Each round commits ROWS new rows in one transaction, then loads them and changes two columns of
each in one transaction, then deletes them with one bulk statement; the table gives the median
commit time (flush included), what each recorder adds to the baseline, and the records it kept
per round (the ORM mode does not see the bulk delete; triggers do). The relay and the drain happen later, off the request path; the
last column says how long the workers then take to relay and store the records of one round
(about 3 x ROWS for triggers, 2 x ROWS for the ORM mode). The recorders take turns in each
round, so that a slow moment of the server does not fall on one of them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid

import psycopg2
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from flask_audit import FlaskAudit
from flask_audit.integrations.outbox import relay_all
from flask_audit.pipeline.drain import Drainer

PG_ADMIN = os.environ.get("AUDIT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def build(url: str):
    app = Flask("bench_tracking", instance_path=f"/tmp/bench_tracking_{os.getpid()}")
    app.config["SQLALCHEMY_DATABASE_URI"] = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    db = SQLAlchemy(app)

    class User(db.Model):  # flask-audit-logger's actor
        id: Mapped[int] = mapped_column(primary_key=True)

    def item(name: str, **table_args):
        attrs = {
            "__tablename__": name,
            "__table_args__": table_args or {},
            "id": mapped_column(sa.Integer, primary_key=True),
            "name": mapped_column(sa.String(80)),
            "qty": mapped_column(sa.Integer),
            "price": mapped_column(sa.Numeric(10, 2)),
            "note": mapped_column(sa.Text),
            "__annotations__": {},
        }
        return type(name.title().replace("_", ""), (db.Model,), attrs)

    models = {
        "no recording": item("items_plain"),
        "flask-audit-logger (triggers)": item("items_fal", info={"audit_logged": True}),
        "flask-audit (ORM, outbox)": item("items_orm"),
        "flask-audit (triggers, outbox)": item("items_trig"),
    }
    from flask_audit_logger import AuditLogger

    logger = AuditLogger(db, get_actor_id=lambda: None, get_client_addr=lambda: None)
    audit = FlaskAudit(
        app, AUDIT_DATABASE_URL=url, AUDIT_REDIS_URL="redis://127.0.0.1:6379/13", AUDIT_TESTING=False
    )
    audit.track(models["flask-audit (ORM, outbox)"])
    audit.track(models["flask-audit (triggers, outbox)"], triggers=True)
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(logger.pg_btree_gist_extension.create_sql)
        db.create_all()
        with db.engine.begin() as conn:
            for function in logger.pg_functions:
                conn.execute(function.create_sql)
            for trigger in logger.pg_triggers:
                conn.execute(trigger.create_sql)
        audit.tracker.install()
        audit.runtime(app).store.create_schema()
    return app, db, audit, models


def round_of(app, db, model, rows: int) -> tuple[float, float]:
    with app.test_request_context("/bench"):
        db.session.add_all([model(name=f"item {i}", qty=i, price=i / 4, note="x" * 40) for i in range(rows)])
        start = time.perf_counter()
        db.session.commit()
        insert_s = time.perf_counter() - start
        for obj in db.session.execute(sa.select(model)).scalars():
            obj.qty += 1
            obj.note = "changed"
        start = time.perf_counter()
        db.session.commit()
        update_s = time.perf_counter() - start
        db.session.execute(sa.delete(model))
        db.session.commit()
    return insert_s, update_s


def records(db, app, runtime, table: str) -> int:
    """What a recorder kept for ``table``: flask-audit-logger's activity rows, flask-audit's
    stored events."""
    with app.app_context():
        fal = db.session.execute(sa.text("SELECT count(*) FROM activity WHERE table_name = :t"), {"t": table})
        count = fal.scalar_one()
        db.session.remove()
    model = runtime.store.model
    return count + model.select().where(model.resource_type == table).count()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    name = f"audit_tracking_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        app, db, audit, models = build(url)
        runtime = audit.runtime(app)
        for model in models.values():  # warm up every table and connection first
            round_of(app, db, model, min(args.rows, 1000))
        with app.app_context():
            relay_all(audit.tracker.engines(), runtime)
        Drainer(runtime.queue, runtime.store).drain_all(1000)
        samples: dict[str, list[tuple[float, float]]] = {label: [] for label in models}
        later: dict[str, list[float]] = {label: [] for label in models}
        for _ in range(args.rounds):  # round-robin, so that the server's moods hit every recorder
            for label, model in models.items():
                samples[label].append(round_of(app, db, model, args.rows))
                with app.app_context():
                    start = time.perf_counter()
                    relay_all(audit.tracker.engines(), runtime)
                    Drainer(runtime.queue, runtime.store).drain_all(1000)
                    later[label].append(time.perf_counter() - start)
        results = {
            label: (
                statistics.median(s[0] for s in samples[label]),
                statistics.median(s[1] for s in samples[label]),
                statistics.median(later[label]) if "flask-audit (" in label else None,
                records(db, app, runtime, model.__tablename__) / (args.rounds + 1),
            )
            for label, model in models.items()
        }
        base_insert, base_update, _, _ = results["no recording"]
        print(f"\ncommits of {args.rows:,} rows on PostgreSQL, median of {args.rounds} rounds\n")
        print(
            "| recorder | insert commit s | added | update commit s | added | records per round"
            " | workers later, s per commit |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, (insert_s, update_s, later_s, per_round) in results.items():
            added_i = "" if label == "no recording" else f"+{insert_s - base_insert:.3f}"
            added_u = "" if label == "no recording" else f"+{update_s - base_update:.3f}"
            later = "" if later_s is None else f"{later_s:.3f}"
            print(
                f"| {label} | {insert_s:.3f} | {added_i} | {update_s:.3f} | {added_u} | {per_round:,.0f} | {later} |"
            )
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        runtime.store.close()
    finally:
        admin.cursor().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
