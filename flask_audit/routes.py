"""The monitoring blueprint: audit metrics and health, as JSON in the original design's shapes."""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, current_app, jsonify

from .health import Thresholds, assess
from .runtime import AuditRuntime


def _runtime() -> AuditRuntime:
    return current_app.extensions["audit"].runtime()


def thresholds_of(runtime: AuditRuntime) -> Thresholds:
    config = runtime.config
    return Thresholds(
        queue_length=config.alert_queue_threshold,
        failures_per_minute=config.alert_failures_per_minute,
        dropped=config.alert_dropped_threshold,
    )


def audit_metrics() -> Any:
    """GET audit-metrics: health, metrics and recommendations from the shared counters."""
    runtime = _runtime()
    try:
        snapshot = runtime.metrics.snapshot()
    except redis.RedisError as exc:
        body = {
            "health": {"status": "unhealthy", "issues": [f"Redis unreachable: {exc}"]},
            "metrics": None,
            "recommendations": [
                {"severity": "critical", "message": "Check the Redis server and AUDIT_REDIS_URL."}
            ],
        }
        return jsonify(body), 503
    assessment = assess(snapshot, thresholds_of(runtime))
    return jsonify(
        {
            "health": {"status": assessment.status, "issues": assessment.issues},
            "metrics": {
                "queue_length": snapshot.queue_length + snapshot.priority_length,
                "current_batch_size": snapshot.current_batch_size,
                "inserts_last_minute": snapshot.inserts_last_minute,
                "failures_last_minute": snapshot.failures_last_minute,
                "avg_batch_time_ms": snapshot.avg_batch_time_ms,
                "total_dropped_events": snapshot.totals["dropped"],
                "total_overflow_events": snapshot.totals["overflow"],
            },
            "recommendations": assessment.recommendations,
        }
    )


def health() -> Any:
    """GET health: 503 when Redis is unreachable; a stopped worker degrades but does not fail it,
    since events wait safely in the queue and the web process can go on serving."""
    runtime = _runtime()
    try:
        snapshot = runtime.metrics.snapshot()
    except redis.RedisError:
        body = {
            "status": "unhealthy",
            "services": {"redis": "disconnected", "audit_worker": "unknown"},
        }
        return jsonify(body), 503
    worker = "running" if snapshot.workers_alive else "stopped"
    status = "healthy" if worker == "running" else "degraded"
    return jsonify({"status": status, "services": {"redis": "connected", "audit_worker": worker}})


def monitoring_blueprint() -> Blueprint:
    """A new blueprint per app, so that apps with different prefixes can share a process."""
    bp = Blueprint("audit_monitoring", __name__)
    bp.add_url_rule("/audit-metrics", "audit_metrics", audit_metrics, methods=["GET"])
    bp.add_url_rule("/health", "health", health, methods=["GET"])
    return bp
