"""Dramatiq's broker for the drain messages, and how many of them are pending.

By default the drain messages live in the audit Redis (following Sentinel when it is configured).
``AUDIT_BROKER_URL`` moves them to a Redis of their own or to RabbitMQ; the audit queue itself
always stays in the audit Redis. Drain messages carry no events, only a batch size, so a broker
that loses one loses no event: the clock sends another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware

from flask_audit.config import AuditConfig
from flask_audit.runtime import AuditRuntime

logger = logging.getLogger(__name__)

#: milliseconds a dead drain message is kept in Dramatiq's dead-letter set
DEAD_MESSAGE_TTL_MS = 3_600_000
#: milliseconds without a heartbeat before Dramatiq deems a worker dead and requeues the drain
#: messages it held (Dramatiq's default is 60 s; drains are cheap to redo, so we want them sooner)
BROKER_HEARTBEAT_TIMEOUT_MS = 15_000
#: Dramatiq commands per million that also run its maintenance (requeueing dead workers'
#: messages): every one. Until a dead worker's drain messages come back, the clock counts them
#: as pending and sends no others, so a chance of 5 % (an idle worker polls about twice a second)
#: stalled the drain for 15 to over 60 s after a SIGKILL. Maintenance without a dead worker is two
#: range reads of small sorted sets; with one, it does what any chance would do once
BROKER_MAINTENANCE_CHANCE = 1_000_000
#: seconds a drain message stays counted as pending after it was last sent or retried, when no
#: worker reports it done (a message the broker lost stops holding a place after this)
PENDING_LEASE_SECONDS = 300


def build_broker(runtime: AuditRuntime) -> dramatiq.Broker:
    """The broker AUDIT_BROKER_URL names; by default a Redis broker on the audit Redis, its keys
    under the audit prefix."""
    url = runtime.config.broker_url
    if url and url.lower().startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker  # needs pika: the 'rabbitmq' extra

        broker: dramatiq.Broker = RabbitmqBroker(url=url, confirm_delivery=True)
        broker.add_middleware(
            PendingDrains(runtime.background_redis, runtime.config.key("drains:pending"), runtime.config)
        )
        return broker
    return RedisBroker(
        client=redis.Redis.from_url(url) if url else runtime.background_redis,
        namespace=runtime.config.key("dramatiq"),
        # A failed drain message holds no events (they stay in the audit queue), so there is
        # nothing to keep it for: an hour is enough to look at it.
        dead_message_ttl=DEAD_MESSAGE_TTL_MS,
        heartbeat_timeout=BROKER_HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=BROKER_MAINTENANCE_CHANCE,
    )


class PendingDrains(Middleware):
    """Counts, in the audit Redis, the drain messages sent and not yet done, for a broker that
    cannot count the messages its workers hold (RabbitMQ shows only those ready for delivery; a
    worker holds what it prefetched and the retries it waits out, unacknowledged).

    A message is counted from each send (a retry is a send) until a worker finishes it, and at
    most ``PENDING_LEASE_SECONDS`` past its due time; it is one sorted-set member, its id.
    """

    def __init__(self, client: redis.Redis, key: str, config: AuditConfig) -> None:
        self.client = client
        self.key = key
        self.lease = max(PENDING_LEASE_SECONDS, 2 * config.retry_max_backoff_seconds)

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int | None) -> None:
        due = time.time() + (delay or 0) / 1000 + self.lease
        self._quietly(lambda: self.client.zadd(self.key, {message.message_id: due}))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.Message,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is None or message.failed:  # a retry stays pending: it was sent again
            self._quietly(lambda: self.client.zrem(self.key, message.message_id))

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self._quietly(lambda: self.client.zrem(self.key, message.message_id))

    def count(self) -> int:
        """Messages counted now (past-lease ones are forgotten first)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self.key, "-inf", time.time())
            pipe.zcard(self.key)
            return int(pipe.execute()[1])

    def _quietly(self, call: Callable[[], object]) -> None:
        try:
            call()
        except redis.RedisError as exc:  # a miscount only delays or hastens the next drain
            logger.warning("pending drain count not updated: %s", exc)


def pending_drains(broker: dramatiq.Broker, queue_name: str) -> int:
    """Drain messages sent and not yet acknowledged, including those waiting to be retried."""
    if isinstance(broker, RedisBroker):
        with broker.client.pipeline(transaction=False) as pipe:
            pipe.hlen(f"{broker.namespace}:{queue_name}.msgs")
            pipe.hlen(f"{broker.namespace}:{queue_name}.DQ.msgs")
            return sum(pipe.execute())
    if isinstance(broker, StubBroker):
        return sum(
            broker.queues[name].qsize() for name in (queue_name, f"{queue_name}.DQ") if name in broker.queues
        )
    tracker = next((m for m in broker.middleware if isinstance(m, PendingDrains)), None)
    if tracker is not None and hasattr(broker, "get_queue_message_counts"):
        ready, delayed, _dead = broker.get_queue_message_counts(queue_name)
        # While no worker runs, the broker's count is exact; while workers run, the tracker's is.
        return max(tracker.count(), ready + delayed)
    raise TypeError(f"cannot count pending messages on {type(broker).__name__}")
