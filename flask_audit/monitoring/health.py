"""Pure policy: from the numbers to findings, a health status, and what to do about them.

The same findings feed the JSON route (issues, recommendations), `flask audit status` and the
clock's alerts, so the three never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_audit.config import AuditConfig
from flask_audit.monitoring.metrics import Snapshot

#: the rules that alert (the original design's three, and a failed verification of the seals);
#: the other findings only show in health
ALERT_RULES = (
    "queue_backed_up",
    "high_failure_rate",
    "events_dropped",
    "integrity_violation",
    "stream_lagging",
)


@dataclass(frozen=True)
class Thresholds:
    queue_length: int = 5000
    failures_per_minute: int = 50
    dropped: int = 0
    stream_lag_seconds: float = 300


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # "critical" | "warning"
    value: float
    threshold: float
    issue: str
    action: str

    @property
    def alert_text(self) -> str:
        """The original design's alert line."""
        return f"🚨 CRITICAL: {self.issue}" if self.severity == "critical" else f"⚠️  WARNING: {self.issue}"


@dataclass
class Assessment:
    status: str
    issues: list[str] = field(default_factory=list)
    recommendations: list[dict[str, str]] = field(default_factory=list)


def findings(snapshot: Snapshot, thresholds: Thresholds) -> list[Finding]:
    """Each problem the numbers show, with the original design's action for it."""
    found: list[Finding] = []
    dropped_total = snapshot.totals.get("dropped", 0)
    if snapshot.waiting > thresholds.queue_length:
        found.append(
            Finding(
                "queue_backed_up",
                "critical",
                snapshot.waiting,
                thresholds.queue_length,
                f"Audit queue backed up! Queue length: {snapshot.waiting}",
                "Scale workers: start more `dramatiq` worker processes.",
            )
        )
    if snapshot.failures_last_minute > thresholds.failures_per_minute:
        found.append(
            Finding(
                "high_failure_rate",
                "critical",
                snapshot.failures_last_minute,
                thresholds.failures_per_minute,
                f"High failure rate! Failures: {snapshot.failures_last_minute}/min",
                "Check the database connection and the worker logs.",
            )
        )
    if snapshot.dropped_last_minute > thresholds.dropped:
        found.append(
            Finding(
                "events_dropped",
                "warning",
                snapshot.dropped_last_minute,
                thresholds.dropped,
                f"Events being dropped! Total dropped: {dropped_total}",
                "Increase the worker count or AUDIT_MAX_QUEUE_LENGTH.",
            )
        )
    if snapshot.workers_alive == 0 and snapshot.waiting > 0:
        found.append(
            Finding(
                "no_worker",
                "critical",
                0,
                1,
                "No audit worker is running",
                "Start a worker: `dramatiq flask_audit.worker` (FLASK_APP set).",
            )
        )
    if snapshot.integrity_problems > 0:
        found.append(
            Finding(
                "integrity_violation",
                "critical",
                snapshot.integrity_problems,
                0,
                f"Integrity violation! {snapshot.integrity_problems} problems in the latest seals",
                "Run `flask audit verify` to see which rows and seals; treat it as a security incident.",
            )
        )
    if snapshot.stream_lag_seconds > thresholds.stream_lag_seconds:
        found.append(
            Finding(
                "stream_lagging",
                "warning",
                snapshot.stream_lag_seconds,
                thresholds.stream_lag_seconds,
                f"Log stream falling behind! Oldest undelivered event:"
                f" {snapshot.stream_lag_seconds:.0f} s old ({snapshot.stream_undelivered} waiting)",
                "Check AUDIT_STREAM_URL's endpoint and the worker logs; the events wait in the database"
                " and are sent when it answers again.",
            )
        )
    if snapshot.overflow_last_minute > 0:
        found.append(
            Finding(
                "queue_overflow",
                "warning",
                snapshot.overflow_last_minute,
                0,
                f"Queue overflowed: {snapshot.overflow_last_minute} events written directly to the database"
                " in the last minute",
                "Increase the worker count or AUDIT_MAX_QUEUE_LENGTH.",
            )
        )
    if snapshot.failed_length > 0:
        found.append(
            Finding(
                "failed_events",
                "warning",
                snapshot.failed_length,
                0,
                f"{snapshot.failed_length} events rejected by the database wait in the failed list",
                "Inspect them with `flask audit failed list`, fix the cause, then `failed requeue`.",
            )
        )
    return found


def assess(snapshot: Snapshot, thresholds: Thresholds) -> Assessment:
    """Health status (healthy, degraded, unhealthy), issues and recommendations."""
    found = findings(snapshot, thresholds)
    if not found:
        return Assessment("healthy", [], [{"severity": "info", "message": "All systems operating normally."}])
    status = "unhealthy" if any(f.severity == "critical" for f in found) else "degraded"
    return Assessment(
        status,
        [f.issue for f in found],
        [{"severity": f.severity, "message": f.action} for f in found],
    )


def thresholds_of(config: AuditConfig) -> Thresholds:
    return Thresholds(
        queue_length=config.alert_queue_threshold,
        failures_per_minute=config.alert_failures_per_minute,
        dropped=config.alert_dropped_threshold,
        stream_lag_seconds=config.alert_stream_lag_seconds,
    )
