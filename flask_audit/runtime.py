"""Per-app state built by ``init_app``: a container of one app's collaborators (clients, queue,
store, metrics, breaker, spool, buffer, write path), each created on first use."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property

import redis
from flask import current_app
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_audit import safety
from flask_audit.config import AuditConfig
from flask_audit.events.event import AuditEvent
from flask_audit.ingest.breaker import CircuitBreaker
from flask_audit.ingest.buffer import EventBuffer
from flask_audit.ingest.group_commit import GroupCommit
from flask_audit.ingest.spool import Spool
from flask_audit.ingest.write_path import WritePath
from flask_audit.integrity.seals import Signer
from flask_audit.monitoring.metrics import Metrics
from flask_audit.queue.connect import RedisConnector
from flask_audit.queue.embedded import embedded_redis_url
from flask_audit.queue.redis_queue import AuditQueue
from flask_audit.storage.store import AuditStore

#: seconds; background processes (worker, clock, CLI) may wait longer on Redis than a request
BACKGROUND_REDIS_TIMEOUT = 10.0


class AuditRuntime:
    """Everything one app's audit log needs at run time, created lazily on first use."""

    def __init__(self, config: AuditConfig, redis_client: redis.Redis | None = None) -> None:
        self.config = config
        self._given_redis = redis_client
        self.breaker = CircuitBreaker(config.breaker_cooldown_seconds)
        self.spool = Spool(config.spool_path)
        #: events recorded in memory instead of being sent (AUDIT_TESTING, flask_audit.testing)
        self.recorder: list[AuditEvent] | None = [] if config.testing else None

    # -- collaborators -------------------------------------------------------------------------

    @cached_property
    def redis_url(self) -> str | None:
        """AUDIT_REDIS_URL; else none with Sentinel (it names the master); else the embedded server."""
        if self.config.redis_url:
            return self.config.redis_url
        if self.config.redis_sentinels:
            return None
        return embedded_redis_url(os.path.join(self.config.instance_path, "audit-redis.db"))

    @cached_property
    def connector(self) -> RedisConnector:
        return RedisConnector(self.config, self.redis_url)

    @cached_property
    def redis(self) -> redis.Redis:
        """The request path's client: short timeouts, no retries (the breaker decides)."""
        if self._given_redis is not None:
            return self._given_redis
        return self.connector.client(
            socket_timeout=self.config.redis_timeout_seconds,
            socket_connect_timeout=self.config.redis_timeout_seconds,
            retry=Retry(NoBackoff(), 0),
        )

    @cached_property
    def background_redis(self) -> redis.Redis:
        """The client of workers, the clock and the CLI, which can afford to wait."""
        if self._given_redis is not None:
            return self._given_redis
        return self.connector.client(
            socket_timeout=BACKGROUND_REDIS_TIMEOUT,
            socket_connect_timeout=BACKGROUND_REDIS_TIMEOUT,
            health_check_interval=30,
        )

    @cached_property
    def queue(self) -> AuditQueue:
        return AuditQueue(self.redis, self.config)

    @cached_property
    def background_queue(self) -> AuditQueue:
        return AuditQueue(self.background_redis, self.config)

    @cached_property
    def metrics(self) -> Metrics:
        """Counters as the request path and the monitoring routes see them (short timeouts)."""
        return Metrics(self.redis, self.config)

    @cached_property
    def background_metrics(self) -> Metrics:
        return Metrics(self.background_redis, self.config)

    @cached_property
    def store(self) -> AuditStore:
        return AuditStore(self.config.database_url, partitioned=self.config.partitioning == "monthly")

    @cached_property
    def signer(self) -> Signer:
        """Signs new seals with AUDIT_SIGNING_KEY; verifies with it and AUDIT_SIGNING_KEYS_OLD."""
        return Signer(self.config.signing_key, self.config.signing_keys_old)

    @cached_property
    def push(self) -> Callable[[list[bytes]], int]:
        """The request path's push: through group commit (AUDIT_GROUP_COMMIT), else one round
        trip a call."""
        if self.config.group_commit:
            return GroupCommit(self.queue.push).push
        return self.queue.push

    # -- the write path ------------------------------------------------------------------------

    @cached_property
    def write_path(self) -> WritePath:
        return WritePath(self)

    @cached_property
    def submit(self) -> Callable[[bytes], None]:
        """``audit.log``'s hand-off of one entry: into the buffer (AUDIT_BUFFERED), else
        ``WritePath.submit``. Chosen once, as the mode does not change: the request path is
        spared a call and the configuration look-up per event."""
        return self.buffer.add if self.config.buffered else self.write_path.submit

    @cached_property
    def buffer(self) -> EventBuffer:
        # Exit handlers run last registered, first run: resolving the URL first registers the
        # embedded server's (which may shut it down) before the buffer's final flush, so that
        # flush still finds the server, and never starts one the exit would leave behind.
        try:
            if self._given_redis is None:
                _ = self.redis_url
        except Exception as exc:  # the flush will meet it again and fall back
            safety.swallowed(exc, "embedded redis")
        return EventBuffer(
            self.write_path.push_entries, self.config.buffer_flush_ms / 1000, self.config.buffer_max_events
        )


def current_runtime() -> AuditRuntime:
    """The runtime of the app in the current context (routes and CLI commands)."""
    return current_app.extensions["audit"].runtime()
