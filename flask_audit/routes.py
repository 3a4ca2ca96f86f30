"""The monitoring blueprint: audit metrics and health in the original design's JSON shapes,
Prometheus metrics, and the dashboard. All but health need AUDIT_MONITORING_TOKEN when it is set."""

from __future__ import annotations

import hmac
from typing import Any

import redis
from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from .api import bearer_matches
from .health import assess, thresholds_of
from .prometheus import exposition
from .query import to_dict
from .runtime import AuditRuntime

#: latest critical events the dashboard lists
DASHBOARD_CRITICAL_EVENTS = 10


def _runtime() -> AuditRuntime:
    return current_app.extensions["audit"].runtime()


def require_token() -> None:
    """Bearer token (constant-time compare) when AUDIT_MONITORING_TOKEN is set. The dashboard page
    also takes ``?token=``, since a browser cannot send a header when it opens a page."""
    token = _runtime().config.monitoring_token
    if token is None:
        return
    if bearer_matches(token):
        return
    given = request.args.get("token") if request.endpoint == "audit_monitoring.dashboard" else None
    if given and hmac.compare_digest(given.encode(), token.encode()):
        return
    abort(401)


def audit_metrics() -> Any:
    """GET audit-metrics: health, metrics and recommendations from the shared counters."""
    require_token()
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
    assessment = assess(snapshot, thresholds_of(runtime.config))
    return jsonify(
        {
            "health": {"status": assessment.status, "issues": assessment.issues},
            "metrics": {
                "queue_length": snapshot.waiting,
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
    since events wait safely in the queue and the web process can go on serving. Never protected:
    load balancers call it."""
    runtime = _runtime()
    try:
        snapshot = runtime.metrics.snapshot()
    except redis.RedisError:
        body = {"status": "unhealthy", "services": {"redis": "disconnected", "audit_worker": "unknown"}}
        return jsonify(body), 503
    worker = "running" if snapshot.workers_alive else "stopped"
    status = "healthy" if worker == "running" else "degraded"
    return jsonify({"status": status, "services": {"redis": "connected", "audit_worker": worker}})


def prometheus_metrics() -> Any:
    """GET /metrics: Prometheus text format, one Redis round trip."""
    require_token()
    try:
        snapshot = _runtime().metrics.snapshot()
    except redis.RedisError:
        abort(503)
    return Response(exposition(snapshot), mimetype="text/plain; version=0.0.4; charset=utf-8")


def dashboard() -> Any:
    require_token()
    return render_template("flask_audit/dashboard.html", token=request.args.get("token", ""))


def dashboard_data() -> Any:
    """Everything the dashboard draws, in one JSON document."""
    require_token()
    runtime = _runtime()
    snapshot = runtime.metrics.snapshot()
    assessment = assess(snapshot, thresholds_of(runtime.config))
    try:
        critical = [to_dict(r) for r in runtime.store.recent(DASHBOARD_CRITICAL_EVENTS, category="critical")]
    except Exception as exc:  # the dashboard still shows Redis's numbers when the database is down
        critical, assessment.issues = [], [*assessment.issues, f"Database unreachable: {exc}"]
    return jsonify(
        {
            "health": {"status": assessment.status, "issues": assessment.issues},
            "snapshot": {
                "queue_length": snapshot.waiting,
                "failed_length": snapshot.failed_length,
                "current_batch_size": snapshot.current_batch_size,
                "avg_batch_time_ms": snapshot.avg_batch_time_ms,
                "workers_alive": snapshot.workers_alive,
                "totals": snapshot.totals,
            },
            "series": runtime.metrics.series(60),
            "critical_events": critical,
        }
    )


def monitoring_blueprint() -> Blueprint:
    """A new blueprint per app, so that apps with different prefixes can share a process."""
    bp = Blueprint(
        "audit_monitoring",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/dashboard/static",
    )
    bp.add_url_rule("/audit-metrics", "audit_metrics", audit_metrics, methods=["GET"])
    bp.add_url_rule("/health", "health", health, methods=["GET"])
    bp.add_url_rule("/dashboard", "dashboard", dashboard, methods=["GET"])
    bp.add_url_rule("/dashboard/data", "dashboard_data", dashboard_data, methods=["GET"])
    return bp


def metrics_blueprint() -> Blueprint:
    bp = Blueprint("audit_prometheus", __name__)
    bp.add_url_rule("/metrics", "metrics", prometheus_metrics, methods=["GET"])
    return bp
