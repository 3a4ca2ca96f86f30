"""Baseline for bench/run.py: one Dramatiq message per event, one INSERT per message (what a team
writes first). Run as ``dramatiq bench.naive_worker``; configured by BENCH_REDIS_URL,
BENCH_NAMESPACE and BENCH_DATABASE_URL."""

import os

import dramatiq
import orjson
import psycopg2
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"], namespace=os.environ["BENCH_NAMESPACE"])
dramatiq.set_broker(broker)
_local = __import__("threading").local()

INSERT = (
    "INSERT INTO audit_logs (event_id, created_at, event_type, event_category, user_id, resource_type,"
    " resource_id, description, metadata, ip_address, user_agent, request_id)"
    " VALUES (%(event_id)s, %(created_at)s, %(event_type)s, %(event_category)s, %(user_id)s, %(resource_type)s,"
    " %(resource_id)s, %(description)s, %(metadata)s, %(ip_address)s, %(user_agent)s, %(request_id)s)"
    " ON CONFLICT (event_id) DO NOTHING"
)


def _conn():
    if not hasattr(_local, "conn"):
        _local.conn = psycopg2.connect(os.environ["BENCH_DATABASE_URL"])
        _local.conn.autocommit = True
    return _local.conn


@dramatiq.actor(actor_name="naive_insert", queue_name="naive", max_retries=3)
def naive_insert(entry: str) -> None:
    row = orjson.loads(entry)
    row.pop("v", None)
    row["metadata"] = orjson.dumps(row["metadata"]).decode() if row.get("metadata") is not None else None
    with _conn().cursor() as cur:
        cur.execute(INSERT, row)
