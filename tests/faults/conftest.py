"""Fault tests: real Redis, real PostgreSQL, real processes; the server they stop is restarted."""

import pytest

from tests.conftest import REDIS_URL


@pytest.fixture
def live(make_app, pg_url, key_prefix):
    """An app in this process on the same Redis keyspace and database as the spawned processes."""
    app, audit = make_app(
        AUDIT_REDIS_URL=REDIS_URL,
        AUDIT_KEY_PREFIX=key_prefix,
        AUDIT_DATABASE_URL=pg_url,
        AUDIT_MAX_QUEUE_LENGTH=100_000,
    )
    return app, audit, audit.runtime(app)
