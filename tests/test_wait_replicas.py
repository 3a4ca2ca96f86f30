"""AUDIT_REDIS_WAIT_REPLICAS on a Redis with no replica: WAIT falls short, so the event is
written through as well, counted as unreplicated, and stored once after the drain."""

from __future__ import annotations

import pytest

from flask_audit.errors import ReplicationShortfall
from flask_audit.pipeline.drain import Drainer


@pytest.fixture
def waiting_app(make_app, real_redis_client, key_prefix):
    """An app that waits for one replica, on the real Redis, which has none."""
    return make_app(
        redis_client=real_redis_client,
        AUDIT_KEY_PREFIX=key_prefix,
        AUDIT_REDIS_WAIT_REPLICAS=1,
        AUDIT_REDIS_WAIT_TIMEOUT_MS=20,
    )


@pytest.mark.expect_swallowed
def test_an_unconfirmed_push_is_written_through_too_and_stored_once(waiting_app, swallowed_errors):
    app, audit = waiting_app
    runtime = audit.runtime(app)
    with app.test_request_context("/"):
        event_id = audit.log("api_key_created", user_id="u1")
    assert runtime.store.event_ids() == [event_id]  # written through at once
    assert runtime.queue.depth() == 1  # and in the queue too: the master has it
    assert runtime.breaker.is_open
    assert [where for _exc, where in swallowed_errors] == ["redis replication"]
    with app.test_request_context("/"):
        second = audit.log("api_key_created", user_id="u2")  # breaker open: straight through
    Drainer(runtime.background_queue, runtime.store).drain_all(100)
    assert sorted(runtime.store.event_ids()) == sorted([event_id, second])  # once each
    runtime.write_path.counts.flush()
    totals = runtime.background_metrics.snapshot().totals
    assert totals["unreplicated"] == 1 and totals["write_through"] == 1


def test_a_critical_fallback_to_the_priority_list_waits_for_replicas_too(waiting_app):
    app, audit = waiting_app
    runtime = audit.runtime(app)
    with pytest.raises(ReplicationShortfall) as err:
        runtime.queue.push_priority(b'{"v": 1}')
    assert (err.value.accepted, err.value.replicas, err.value.wanted) == (1, 0, 1)
