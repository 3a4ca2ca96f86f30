"""The real upgrade from release 0.1.0: its DDL, its rows, and its entries still in the queue; the
new worker and clock drain while `flask audit migrate` runs. No row is lost, the old entries land."""

from __future__ import annotations

import subprocess
import uuid

import orjson
import pytest
import redis

from flask_audit.storage.migrations import MIGRATIONS
from flask_audit.storage.store import AuditStore
from tests.conftest import REDIS_URL
from tests.processes import python, wait_for
from tests.test_migrations import ENTRIES, load_release_0_1_0

#: entries of the 0.1.0 format waiting in the queue when the upgrade starts
QUEUED = 3000


def old_entries(count: int) -> list[bytes]:
    """Copies of release 0.1.0's entries (the fixture) with fresh event ids."""
    made = []
    for i in range(count):
        entry = orjson.loads(ENTRIES[i % len(ENTRIES)])
        entry["event_id"] = str(uuid.uuid4())
        made.append(orjson.dumps(entry))
    return made


@pytest.mark.parametrize("kind", ["plain", "partitioned", "sqlite"])
def test_upgrade_while_a_worker_drains_loses_nothing(kind, service_env, spawn, key_prefix, pg_url, tmp_path):
    env = dict(service_env)
    if kind == "sqlite":
        env["AUDIT_DATABASE_URL"] = f"sqlite:///{tmp_path}/audit.db"
    if kind == "partitioned":
        env["AUDIT_PARTITIONING"] = "monthly"
    url = env["AUDIT_DATABASE_URL"]
    load_release_0_1_0(url, kind)
    queued = old_entries(QUEUED) + ENTRIES  # the fixture's own entries too: redelivered, stored once
    client = redis.Redis.from_url(REDIS_URL)
    client.rpush(key_prefix + "queue", *queued)
    worker = spawn("worker", python("-m", "dramatiq", "worker", "--processes", "1", "--threads", "2"), env)
    spawn("clock", python("-m", "flask", "audit", "scheduler"), env)
    # the worker drains before the table has this release's columns: the database is not ready,
    # the batch goes back (it is not poison, which would file every event in it as failed)
    wait_for(
        lambda: "DatabaseUnavailable" in worker.output() or client.llen(key_prefix + "failed"),
        60,
        "a drain into the table before it is migrated",
    )
    migrate = subprocess.run(
        python("-m", "flask", "audit", "migrate"), env=env, capture_output=True, text=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    store = AuditStore(url, partitioned=kind == "partitioned")
    try:
        expected = len(ENTRIES) + QUEUED
        wait_for(
            lambda: store.count() == expected and client.llen(key_prefix + "queue") == 0,
            90,
            f"{expected} rows",
        )
        assert client.llen(key_prefix + "queue") == 0 and client.llen(key_prefix + "failed") == 0
        status = subprocess.run(
            python("-m", "flask", "audit", "migrate", "--status"),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert f"{len(MIGRATIONS)} applied, 0 pending" in status
        assert len(set(store.event_ids())) == expected
    finally:
        store.close()
