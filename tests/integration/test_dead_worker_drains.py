"""Drain messages that a dead worker had fetched come back at the first broker command after
Dramatiq's heartbeat timeout, not at a random later one: until they do, the clock counts them as
pending and sends no others, so the drain stalls (README, Guarantees: "Worker killed mid-batch")."""

from __future__ import annotations

import time

import dramatiq

from flask_audit.pipeline.brokers import BROKER_HEARTBEAT_TIMEOUT_MS, build_broker


def message(queue: str) -> dramatiq.Message:
    return dramatiq.Message(queue_name=queue, actor_name="drain", args=(300,), kwargs={}, options={})


def test_a_dead_workers_drain_messages_return_at_the_next_command_after_its_timeout(
    make_app, real_redis_client, key_prefix
):
    app, audit = make_app(redis_client=real_redis_client, AUDIT_KEY_PREFIX=key_prefix)
    runtime = audit.runtime(app)
    queue = runtime.config.dramatiq_queue
    for attempt in range(3):  # each attempt a worker that fetched a message, then died
        dead = build_broker(runtime)
        dead.declare_queue(queue)
        sent = message(queue)
        dead.enqueue(sent)
        consumer = dead.consume(queue, prefetch=1, timeout=100)
        held = next(consumer)  # fetched, never acknowledged
        assert held.message_id == sent.message_id
        held_id = held.options["redis_message_id"].encode()  # the broker's id in its queue
        # the worker stopped beating longer ago than the timeout
        stale = int(time.time() * 1000) - BROKER_HEARTBEAT_TIMEOUT_MS - 1000
        real_redis_client.zadd(f"{dead.namespace}:__heartbeats__", {dead.broker_id: stale})
        queued = f"{dead.namespace}:{queue}"
        assert held_id not in real_redis_client.lrange(queued, 0, -1)

        survivor = build_broker(runtime)
        survivor.declare_queue(queue)
        survivor.enqueue(message(queue))  # one command of a live process
        assert held_id in real_redis_client.lrange(queued, 0, -1), (
            f"attempt {attempt}: the dead worker's message was not requeued by the next command"
        )
        real_redis_client.delete(queued)
