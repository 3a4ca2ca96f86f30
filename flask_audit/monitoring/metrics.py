"""Counters kept in Redis so that every process sees the same numbers; one snapshot read."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from flask_audit.config import AuditConfig
from flask_audit.monitoring.buckets import BUCKET_SECONDS, BUCKET_TTL, bucket_key

#: totals kept in the ``<prefix>metrics`` hash
TOTALS = (
    "enqueued",
    "inserted",
    "failed",
    "batches",
    "overflow",
    "dropped",
    "critical",
    "write_through",
    "unreplicated",
    "spooled",
    "critical_fallback",
    "db_statements",
    "outcome_success",
    "outcome_failure",
    "outcome_denied",
)
#: buckets summed for the "last minute" figures: the current one and the five before it
MINUTE_BUCKETS = 60 // BUCKET_SECONDS


@dataclass
class Snapshot:
    """What the monitoring routes, the CLI and the alerts read."""

    queue_length: int
    priority_length: int
    failed_length: int
    current_batch_size: int
    inserts_last_minute: int
    failures_last_minute: int
    batches_last_minute: int
    avg_batch_time_ms: float
    workers_alive: int
    totals: dict[str, int] = field(default_factory=dict)
    dropped_last_minute: int = 0
    overflow_last_minute: int = 0
    #: the clock's last verification: the last seal it verified, the problems it found, the rows
    #: not sealed yet, and when (seconds since the epoch; 0: never)
    integrity_last_seal: int = 0
    integrity_problems: int = 0
    unsealed_rows: int = 0
    integrity_verified_at: float = 0.0
    #: the log stream: events delivered and failed attempts (totals), and the clock's last look at
    #: its lag (seconds since the oldest undelivered event was stored, undelivered events)
    stream_delivered: int = 0
    stream_failures: int = 0
    stream_lag_seconds: float = 0.0
    stream_undelivered: int = 0
    stream_last_error: str = ""
    #: batch durations: histogram field ("le:0.05", "count", "sum") -> value
    batch_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def waiting(self) -> int:
        """Events waiting to be drained: the queue and the priority list."""
        return self.queue_length + self.priority_length


class Metrics:
    """Reads and writes the shared counters of one app."""

    def __init__(self, client: redis.Redis, config: AuditConfig) -> None:
        self.client = client
        self.config = config
        self.totals_key = config.key("metrics")
        self.workers_key = config.key("workers")
        self.integrity_key = config.key("integrity")
        self.stream_key = config.key("stream")

    def incr(self, amounts: Mapping[str, int]) -> None:
        """Add to totals (and to the current bucket, for the per-minute figures), in one round trip."""
        bucket = bucket_key(self.config.key_prefix, time.time())
        with self.client.pipeline(transaction=False) as pipe:
            for name, amount in amounts.items():
                pipe.hincrby(self.totals_key, name, amount)
                pipe.hincrby(bucket, name, amount)
            pipe.expire(bucket, BUCKET_TTL)
            pipe.execute()

    def record_tick(self, depth: int, batch_size: int) -> None:
        """The clock's reading: the batch size in force, and the depth for the dashboard's history."""
        bucket = bucket_key(self.config.key_prefix, time.time())
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(self.totals_key, "current_batch_size", batch_size)
            pipe.hset(bucket, mapping={"depth": depth, "batch_size": batch_size})
            pipe.expire(bucket, BUCKET_TTL)
            pipe.execute()

    def _minute_buckets(self, now: float) -> list[str]:
        """The buckets the "last minute" figures sum, newest first."""
        return [bucket_key(self.config.key_prefix, now - i * BUCKET_SECONDS) for i in range(MINUTE_BUCKETS)]

    def inserts_last_minute(self) -> int:
        """Events stored in the last minute (the snapshot's figure), read alone for the clock."""
        with self.client.pipeline(transaction=False) as pipe:
            for key in self._minute_buckets(time.time()):
                pipe.hget(key, "inserted")
            counts = pipe.execute()
        return int(sum(float(count) for count in counts if count is not None))

    def series(self, minutes: int = 60) -> list[dict[str, float]]:
        """Per-minute history, oldest first: inserted, failed, dropped, overflow, batches,
        average batch ms, and the last queue depth and batch size the clock saw that minute."""
        now = time.time()
        per_minute = 60 // BUCKET_SECONDS
        keys = [
            bucket_key(self.config.key_prefix, now - i * BUCKET_SECONDS) for i in range(minutes * per_minute)
        ]
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            rows = pipe.execute()
        points = []
        for minute in range(minutes - 1, -1, -1):
            chunk = rows[minute * per_minute : (minute + 1) * per_minute]  # newest bucket first
            sums: dict[str, float] = {}
            last: dict[str, float] = {}
            for row in chunk:
                for k, v in row.items():
                    name = k.decode()
                    if name in ("depth", "batch_size"):
                        last.setdefault(name, float(v))
                    else:
                        sums[name] = sums.get(name, 0.0) + float(v)
            batches = sums.get("batches", 0.0)
            points.append(
                {
                    "minute": int((now - minute * 60) // 60 * 60),
                    "inserted": sums.get("inserted", 0.0),
                    "failed": sums.get("failed", 0.0),
                    "dropped": sums.get("dropped", 0.0),
                    "overflow": sums.get("overflow", 0.0),
                    "batches": batches,
                    "avg_batch_ms": round(sums.get("batch_ms", 0.0) / batches, 1) if batches else 0.0,
                    "depth": last.get("depth"),
                    "batch_size": last.get("batch_size"),
                }
            )
        return points

    def heartbeat(self, worker_id: str) -> None:
        """A worker says it is alive."""
        self.client.hset(self.workers_key, worker_id, f"{time.time():.3f}")

    def forget_worker(self, worker_id: str) -> None:
        self.client.hdel(self.workers_key, worker_id)

    def prune_workers(self) -> int:
        """Drop heartbeats far older than the staleness limit; returns how many were dropped."""
        limit = time.time() - 30 * self.config.worker_heartbeat_seconds
        stale = [w for w, at in self.client.hgetall(self.workers_key).items() if float(at) < limit]
        if stale:
            self.client.hdel(self.workers_key, *stale)
        return len(stale)

    def snapshot(self) -> Snapshot:
        """Every number the monitoring needs, in one round trip."""
        now = time.time()
        buckets = self._minute_buckets(now)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.totals_key)
            pipe.llen(self.config.queue_key)
            pipe.llen(self.config.key("priority"))
            pipe.llen(self.config.failed_key)
            pipe.hgetall(self.workers_key)
            pipe.hgetall(self.config.key("batch_seconds"))
            pipe.hgetall(self.integrity_key)
            pipe.hgetall(self.stream_key)
            for key in buckets:
                pipe.hgetall(key)
            results = pipe.execute()
        (
            totals_raw,
            queue_len,
            priority_len,
            failed_len,
            workers,
            histogram,
            integrity_raw,
            stream_raw,
            *bucket_rows,
        ) = results
        stream = {k.decode(): v.decode("utf-8", "replace") for k, v in stream_raw.items()}
        integrity = {k.decode(): float(v) for k, v in integrity_raw.items()}
        totals = {k.decode(): int(float(v)) for k, v in totals_raw.items()}
        minute: dict[str, float] = {}
        for row in bucket_rows:
            for k, v in row.items():
                name = k.decode()
                if name not in ("depth", "batch_size"):
                    minute[name] = minute.get(name, 0.0) + float(v)
        batches = int(minute.get("batches", 0))
        stale_after = now - 3 * self.config.worker_heartbeat_seconds
        return Snapshot(
            queue_length=int(queue_len),
            priority_length=int(priority_len),
            failed_length=int(failed_len),
            current_batch_size=totals.pop("current_batch_size", 0),
            inserts_last_minute=int(minute.get("inserted", 0)),
            failures_last_minute=int(minute.get("failed", 0)),
            batches_last_minute=batches,
            avg_batch_time_ms=round(minute.get("batch_ms", 0.0) / batches, 1) if batches else 0.0,
            workers_alive=sum(1 for at in workers.values() if float(at) >= stale_after),
            totals={name: totals.get(name, 0) for name in TOTALS},
            dropped_last_minute=int(minute.get("dropped", 0)),
            overflow_last_minute=int(minute.get("overflow", 0)),
            batch_seconds={k.decode(): float(v) for k, v in histogram.items()},
            integrity_last_seal=int(integrity.get("last_seal", 0)),
            integrity_problems=int(integrity.get("problems", 0)),
            unsealed_rows=int(integrity.get("unsealed_rows", 0)),
            integrity_verified_at=integrity.get("verified_at", 0.0),
            stream_delivered=int(stream.get("delivered", 0)),
            stream_failures=int(stream.get("failures", 0)),
            stream_lag_seconds=float(stream.get("lag_seconds", 0.0)),
            stream_undelivered=int(stream.get("undelivered", 0)),
            stream_last_error=stream.get("last_error", ""),
        )

    def record_stream(self, fields: Mapping[str, Any]) -> None:
        """What the stream's sender did: ``delivered`` and ``failures`` add up; the rest is set."""
        with self.client.pipeline(transaction=False) as pipe:
            for name, value in fields.items():
                if name in ("delivered", "failures"):
                    pipe.hincrby(self.stream_key, name, int(value))
                else:
                    pipe.hset(self.stream_key, name, value)
            pipe.execute()

    def record_stream_lag(self, seconds: float, undelivered: int) -> None:
        """The clock's look at how far behind the stream is, for health, alerts and /metrics."""
        self.client.hset(
            self.stream_key,
            mapping={"lag_seconds": f"{seconds:.3f}", "undelivered": undelivered},
        )

    def record_integrity(self, last_seal: int, problems: int, unsealed_rows: int) -> None:
        """The clock's verification of the latest seals, for health, alerts and /metrics."""
        self.client.hset(
            self.integrity_key,
            mapping={
                "last_seal": last_seal,
                "problems": problems,
                "unsealed_rows": unsealed_rows,
                "verified_at": f"{time.time():.3f}",
            },
        )
