"""Pure policy: from the numbers to a health status, the issues, and what to do about them."""

from __future__ import annotations

from dataclasses import dataclass, field

from .metrics import Snapshot

#: ordered from best to worst
STATUSES = ("healthy", "degraded", "unhealthy")


@dataclass(frozen=True)
class Thresholds:
    queue_length: int = 5000
    failures_per_minute: int = 50
    dropped: int = 0


@dataclass
class Assessment:
    status: str
    issues: list[str] = field(default_factory=list)
    recommendations: list[dict[str, str]] = field(default_factory=list)


def assess(snapshot: Snapshot, thresholds: Thresholds) -> Assessment:
    """Name each problem the numbers show, with the original design's action for it."""
    found: list[tuple[str, str, str]] = []  # (severity, issue, recommendation)
    dropped = snapshot.totals.get("dropped", 0)
    overflow = snapshot.totals.get("overflow", 0)
    if snapshot.queue_length > thresholds.queue_length:
        found.append(
            (
                "critical",
                f"Audit queue backed up! Queue length: {snapshot.queue_length}",
                "Scale workers: start more `dramatiq` worker processes.",
            )
        )
    if snapshot.failures_last_minute > thresholds.failures_per_minute:
        found.append(
            (
                "critical",
                f"High failure rate! Failures: {snapshot.failures_last_minute}/min",
                "Check the database connection and the worker logs.",
            )
        )
    if dropped > thresholds.dropped:
        found.append(
            (
                "warning",
                f"Events being dropped! Total dropped: {dropped}",
                "Increase the worker count or AUDIT_MAX_QUEUE_LENGTH.",
            )
        )
    if snapshot.workers_alive == 0 and snapshot.queue_length > 0:
        found.append(
            (
                "critical",
                "No audit worker is running",
                "Start a worker: `dramatiq flask_audit.worker` (FLASK_APP set).",
            )
        )
    if overflow > 0:
        found.append(
            (
                "warning",
                f"Queue overflowed: {overflow} events written directly to the database",
                "Increase the worker count or AUDIT_MAX_QUEUE_LENGTH.",
            )
        )
    if snapshot.failed_length > 0:
        found.append(
            (
                "warning",
                f"{snapshot.failed_length} events rejected by the database wait in the failed list",
                "Inspect them (LRANGE on the failed list), fix the cause, then requeue them.",
            )
        )
    if not found:
        return Assessment("healthy", [], [{"severity": "info", "message": "All systems operating normally."}])
    status = "unhealthy" if any(sev == "critical" for sev, _, _ in found) else "degraded"
    return Assessment(
        status,
        [issue for _, issue, _ in found],
        [{"severity": sev, "message": advice} for sev, _, advice in found],
    )
