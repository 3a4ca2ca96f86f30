"""The capped Redis list events wait in: push with cap, claim, settle, requeue, reap, depth.

Each operation is one Lua script from ``lua/`` (one round trip, atomic), registered per client.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

import redis

from flask_audit.config import AuditConfig
from flask_audit.errors import ReplicationShortfall
from flask_audit.monitoring.buckets import BUCKET_SECONDS, BUCKET_TTL, bucket_key, histogram_bucket
from flask_audit.queue.lean import LeadingArguments, LeanConnection, PackedCommand


def lua_script(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text()


#: the scripts' text, read once at import
SCRIPTS = {name: lua_script(f"{name}.lua") for name in ("push", "claim", "settle", "requeue")}


@dataclass
class Batch:
    """Entries claimed together; they stay in Redis under ``batch_id`` until settled."""

    batch_id: str
    entries: list[bytes]
    #: events still waiting in the queue right after this claim
    remaining: int = 0


class AuditQueue:
    """The Redis side of the pipeline, for one app's configuration and one Redis client."""

    def __init__(self, client: redis.Redis, config: AuditConfig) -> None:
        self.client = client
        self.config = config
        self.queue_key = config.queue_key
        self.failed_key = config.failed_key
        self.priority_key = config.key("priority")
        self.inflight_key = config.key("inflight")
        self.batch_prefix = config.key("batch:")
        self.totals_key = config.key("metrics")
        self.histogram_key = config.key("batch_seconds")
        self._push = client.register_script(SCRIPTS["push"])
        self._claim = client.register_script(SCRIPTS["claim"])
        self._settle = client.register_script(SCRIPTS["settle"])
        self._requeue = client.register_script(SCRIPTS["requeue"])
        self._lean = LeanConnection(client)
        #: (metrics bucket, the push's leading arguments in it)
        self._lead: tuple[int, LeadingArguments] | None = None

    def push(self, entries: list[bytes]) -> int:
        """Queue ``entries`` (oldest first) under the cap; returns how many were queued.

        Entries past the cap are counted as dropped by the script under the ``drop`` policy; under
        ``direct`` the caller must write them through. One round trip, on this thread's own
        connection (``LeanConnection``), with ``WAIT`` pipelined after it when
        AUDIT_REDIS_WAIT_REPLICAS asks for replicas (``ReplicationShortfall`` when they fall short).
        """
        return self._confirmed(PackedCommand(self._push_lead(time.time()), entries))

    def _push_lead(self, now: float) -> LeadingArguments:
        """The push's arguments before its entries; they change with the metrics bucket."""
        bucket = int(now) // BUCKET_SECONDS
        made = self._lead
        if made is not None and made[0] == bucket:
            return made[1]
        keys = (self.queue_key, self.totals_key, bucket_key(self.config.key_prefix, now))
        limits = (self.config.max_queue_length, self.config.overflow_policy, BUCKET_TTL)
        lead = LeadingArguments("EVALSHA", self._push.sha, 3, *keys, *limits)
        self._lead = (bucket, lead)
        return lead

    def push_priority(self, entry: bytes) -> None:
        """Queue a critical event whose direct write failed: never capped, claimed first."""
        self._confirmed(("LPUSH", self.priority_key, entry))

    def _confirmed(self, command: tuple | PackedCommand) -> int:
        """Run ``command`` (and WAIT, when replicas are asked for) in one round trip; returns its
        count. A server without the push script (a new master after a failover) is given it."""
        wanted = self.config.redis_wait_replicas
        commands = (command, ("WAIT", wanted, self.config.redis_wait_timeout_ms)) if wanted else (command,)
        try:
            replies = self._lean.execute(*commands)
        except redis.exceptions.NoScriptError:
            self.client.script_load(SCRIPTS["push"])
            replies = self._lean.execute(*commands)
        count = int(replies[0])
        if wanted and int(replies[1]) < wanted:
            raise ReplicationShortfall(count, int(replies[1]), wanted)
        return count

    def claim(self, size: int) -> Batch | None:
        """Claim up to ``size`` of the oldest entries; None when there is nothing to drain."""
        batch_id = uuid.uuid4().hex
        deadline_ms = int((time.time() + self.config.visibility_timeout_seconds) * 1000)
        keys = [self.priority_key, self.queue_key, self.inflight_key, self.batch_prefix + batch_id]
        remaining, entries = self._claim(keys=keys, args=[size, deadline_ms, batch_id])
        return Batch(batch_id, list(entries), int(remaining)) if entries else None

    def settle(
        self,
        batch: Batch,
        *,
        inserted: int,
        batch_ms: float,
        failures: Sequence[bytes] = (),
        statements: int = 0,
        outcomes: Mapping[str, int] | None = None,
    ) -> None:
        """Acknowledge ``batch``: file ``failures`` on the failed list and record the metrics,
        ``outcomes`` (stored events by outcome) among them, in one step."""
        counted = [(outcome, count) for outcome, count in (outcomes or {}).items() if count > 0]
        keys = [
            self.inflight_key,
            self.batch_prefix + batch.batch_id,
            self.failed_key,
            self.totals_key,
            bucket_key(self.config.key_prefix, time.time()),
            self.histogram_key,
        ]
        self._settle(
            keys=keys,
            args=[
                batch.batch_id,
                inserted,
                f"{batch_ms:.3f}",
                BUCKET_TTL,
                statements,
                histogram_bucket(batch_ms / 1000),
                len(counted),
                *(item for pair in counted for item in pair),
                *failures,
            ],
        )

    def requeue(self, batch: Batch) -> int:
        """Put ``batch`` back at the tail of the queue (for a transient failure or a shutdown)."""
        keys = [self.queue_key, self.inflight_key]
        return int(self._requeue(keys=keys, args=[self.batch_prefix, "ids", batch.batch_id]))

    def reap(self, now: float | None = None) -> int:
        """Return every batch whose visibility timeout has passed; returns the events moved."""
        now_ms = int((now if now is not None else time.time()) * 1000)
        keys = [self.queue_key, self.inflight_key]
        return int(self._requeue(keys=keys, args=[self.batch_prefix, "due", now_ms]))

    def depth(self) -> int:
        """Events waiting to be claimed (priority and normal)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(self.queue_key)
            pipe.llen(self.priority_key)
            queued, priority = pipe.execute()
        return int(queued) + int(priority)

    def inflight_count(self) -> int:
        """Events claimed by workers and not yet settled."""
        ids = self.client.zrange(self.inflight_key, 0, -1)
        if not ids:
            return 0
        with self.client.pipeline(transaction=False) as pipe:
            for batch_id in ids:
                pipe.llen(self.batch_prefix + batch_id.decode())
            return sum(pipe.execute())

    def failed_length(self) -> int:
        """Events the database rejected, waiting for an operator."""
        return int(self.client.llen(self.failed_key))
