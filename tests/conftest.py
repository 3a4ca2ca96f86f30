"""Fixtures: apps, fakeredis, the real Redis and PostgreSQL of this machine, swallowed errors.

Real services are required when CI or AUDIT_TEST_REQUIRE_SERVICES is set: a test that needs one
then fails, never skips, when it cannot be reached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import psycopg2
import pytest
import redis
from flask import Flask

from flask_audit import FlaskAudit, safety
from flask_audit.events import sanitize
from tests import cluster
from tests.processes import Process, python

REQUIRE_SERVICES = bool(os.environ.get("CI") or os.environ.get("AUDIT_TEST_REQUIRE_SERVICES"))
REDIS_URL = os.environ.get("AUDIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("AUDIT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
PG_ADMIN_DSN = os.environ.get("AUDIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {exc}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (required: CI or AUDIT_TEST_REQUIRE_SERVICES is set)", pytrace=False)
    pytest.skip(message)


# -- errors the request path swallows: fatal in tests unless a test expects them --------------


@pytest.fixture(autouse=True)
def swallowed_errors(request: pytest.FixtureRequest) -> Iterator[list[tuple[BaseException, str]]]:
    """Collects what flask_audit swallowed; fails the test at teardown unless it is marked
    ``expect_swallowed`` (fault tests, which assert on the list themselves)."""
    caught: list[tuple[BaseException, str]] = []

    def listener(exc: BaseException, where: str) -> None:
        caught.append((exc, where))

    safety.listeners.append(listener)
    yield caught
    safety.listeners.remove(listener)
    if caught and request.node.get_closest_marker("expect_swallowed") is None:
        exc, where = caught[0]
        raise AssertionError(f"flask_audit swallowed an error in {where}: {exc!r}") from exc


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "expect_swallowed: the test injects faults the request path absorbs")


def pytest_sessionstart(session: pytest.Session) -> None:
    """The guard: a fault run killed while PostgreSQL was stopped left a note; start it again."""
    done = cluster.restart_if_left_stopped()
    if done:
        print(f"\nflask-audit tests: {done}")


#: fixtures that reach the real Redis or PostgreSQL
SERVER_FIXTURES = {
    "real_redis_client",
    "key_prefix",
    "pg_database",
    "pg_url",
    "service_env",
    "rabbitmq_queue",
}
#: parametrised fixtures whose named parameter reaches a real server
SERVER_PARAMS = {"any_redis": "redis", "any_db_url": "postgresql", "tracked": "postgresql"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by what it needs: ``faults`` (stops or breaks a server), ``browser``
    (Chromium), ``integration`` (the real Redis and PostgreSQL), else ``unit``; and ``processes``
    when it runs the package in processes of its own (the ``spawn`` fixture). Fault tests run
    only when asked (AUDIT_TEST_FAULTS=1, or make test-faults): they stop the PostgreSQL cluster."""
    skip_faults = pytest.mark.skip(
        reason="stops PostgreSQL: run `make test-faults` or set AUDIT_TEST_FAULTS=1 (CI does)"
    )
    for item in items:
        path = item.path.as_posix()
        params = getattr(getattr(item, "callspec", None), "params", {})
        needs_server = (
            bool(SERVER_FIXTURES & set(item.fixturenames))
            or any(params.get(name) == value for name, value in SERVER_PARAMS.items())
            or "/tests/integration/" in path
        )
        if "/tests/faults/" in path:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)
            if not cluster.faults_enabled():
                item.add_marker(skip_faults)
        elif needs_server:
            item.add_marker(pytest.mark.integration)
        if "spawn" in item.fixturenames:
            item.add_marker(pytest.mark.processes)
        if path.endswith(("/test_dashboard.py", "/test_viewer_browser.py")):
            item.add_marker(pytest.mark.browser)
        elif not needs_server and "/tests/faults/" not in path:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    """The repair caches (sensitive keys, canonical addresses) start empty in every test, so a
    test exercises the code itself and not a result an earlier test left in a cache (mutation
    runs fork every mutant from a process whose caches are warm)."""
    sanitize.sensitive_matcher.cache_clear()
    sanitize._canonical_ip.cache_clear()


# -- Redis ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium; required in CI, skipped elsewhere when missing."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Chromium is not installed (apt-get install chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(message + "; required in CI", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture
def fake_redis() -> redis.Redis:
    """A private in-memory Redis with Lua (fakeredis + lupa)."""
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture(scope="session")
def real_redis_client() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL}", exc)
    return client


@pytest.fixture
def key_prefix(real_redis_client: redis.Redis) -> Iterator[str]:
    """A keyspace of its own for one test on the real Redis, deleted afterwards."""
    prefix = f"audit-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    keys = list(real_redis_client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        real_redis_client.delete(*keys)


@pytest.fixture(params=["fakeredis", "redis"])
def any_redis(request: pytest.FixtureRequest) -> tuple[redis.Redis, str]:
    """Both implementations: (client, key prefix)."""
    if request.param == "fakeredis":
        return fakeredis.FakeRedis(server=fakeredis.FakeServer()), "audit:"
    client = request.getfixturevalue("real_redis_client")
    return client, request.getfixturevalue("key_prefix")


# -- RabbitMQ -------------------------------------------------------------------------------------


@pytest.fixture
def rabbitmq_queue() -> Iterator[tuple[str, str]]:
    """(broker URL, a Dramatiq queue name of this test's own) on the machine's RabbitMQ; the
    queue and its delay and dead-letter queues are deleted afterwards."""
    import pika

    try:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    except pika.exceptions.AMQPError as exc:
        unavailable(f"RabbitMQ at {RABBITMQ_URL}", exc)
    connection.close()
    name = f"audit-test-{uuid.uuid4().hex[:10]}"
    yield RABBITMQ_URL, name
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        for queue in (name, f"{name}.DQ", f"{name}.XQ"):
            channel.queue_delete(queue)
    finally:
        connection.close()


# -- databases ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database created for this test session and dropped after it; yields its URL."""
    name = f"flask_audit_test_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg2.connect(PG_ADMIN_DSN)
    except psycopg2.Error as exc:
        unavailable(f"PostgreSQL at {PG_ADMIN_DSN}", exc)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    admin = psycopg2.connect(PG_ADMIN_DSN)  # anew: a fault test may have restarted the server
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session's PostgreSQL database with an empty audit_logs table."""
    conn = psycopg2.connect(pg_database)
    conn.autocommit = True
    with conn.cursor() as cur:
        # a connection an earlier test leaked must fail this test, not hang the whole run
        cur.execute("SET lock_timeout = '20s'")
        cur.execute(
            "DROP TABLE IF EXISTS audit_logs, audit_schema_migrations, audit_seals, audit_stream_cursors,"
            " audit_outbox CASCADE"
        )
    conn.close()
    return pg_database


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/audit.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


# -- apps -----------------------------------------------------------------------------------------


@pytest.fixture
def make_app(tmp_path: Any) -> Callable[..., tuple[Flask, FlaskAudit]]:
    """Build an app with FlaskAudit; keyword arguments are AUDIT_* options. Schema created."""
    built: list[FlaskAudit] = []

    def factory(
        redis_client: redis.Redis | None = None,
        user_loader: Callable[[], Any] | None = None,
        create_schema: bool = True,
        **options: Any,
    ) -> tuple[Flask, FlaskAudit]:
        app = Flask(f"test_app_{len(built)}", instance_path=str(tmp_path / f"instance{len(built)}"))
        app.config["TESTING"] = True
        options.setdefault("AUDIT_DATABASE_URL", f"sqlite:///{tmp_path}/audit{len(built)}.db")
        options.setdefault("AUDIT_SPOOL_PATH", str(tmp_path / f"spool{len(built)}.jsonl"))
        options.setdefault("AUDIT_TESTING", False)  # these tests exercise the real pipeline
        audit = FlaskAudit(app, redis=redis_client, user_loader=user_loader, **options)
        built.append(audit)
        if create_schema:
            audit.runtime(app).store.create_schema()
        return app, audit

    yield factory
    for audit in built:
        for runtime in list(audit._runtimes.values()):
            if "store" in runtime.__dict__:
                runtime.store.close()


# -- real processes -------------------------------------------------------------------------------


@pytest.fixture
def service_env(pg_url: str, key_prefix: str) -> dict[str, str]:
    """Environment that points every process at this test's database and Redis keyspace."""
    env = dict(os.environ)
    env.update(
        FLASK_APP="examples.app",
        AUDIT_REDIS_URL=REDIS_URL,
        AUDIT_KEY_PREFIX=key_prefix,
        AUDIT_DATABASE_URL=pg_url,
        AUDIT_DRAIN_INTERVAL_SECONDS="0.2",
        AUDIT_WORKER_HEARTBEAT_SECONDS="1",
        PYTHONUNBUFFERED="1",
    )
    subprocess.run(
        python("-m", "flask", "audit", "init-db"), env=env, check=True, capture_output=True, timeout=120
    )
    return env


@pytest.fixture
def spawn(tmp_path, request):
    """Start a process that is stopped by PID when the test ends, whatever happened; on failure its
    output is printed."""
    started: list[Process] = []

    def start(name: str, args: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()) -> Process:
        process = Process(name, args, env, tmp_path, pass_fds)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        for process in started:
            print(f"--- {process.name} ---\n{process.output()[-4000:]}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
