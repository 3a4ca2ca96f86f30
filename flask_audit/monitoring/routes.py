"""The monitoring blueprint: audit metrics and health in the original design's JSON shapes,
Prometheus metrics, and the dashboard. All but health need AUDIT_MONITORING_TOKEN when it is set.

Closed by default for data: without a token these routes serve counters only, never event
content (rows, descriptions, metadata, user ids, IPs). Open routes give generic error texts; the
details (hosts, ports, driver messages) go to the log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

import redis
from flask import (
    Blueprint,
    Response,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from flask_audit.api import bearer_matches
from flask_audit.errors import AuditError
from flask_audit.monitoring.health import assess, thresholds_of
from flask_audit.monitoring.prometheus import exposition
from flask_audit.runtime import current_runtime
from flask_audit.storage.query import to_dict

logger = logging.getLogger(__name__)

#: latest critical events the dashboard lists
DASHBOARD_CRITICAL_EVENTS = 10
#: the cookie a dashboard opened with ?token= carries from then on
COOKIE_NAME = "flask_audit_dashboard"


def _cookie_value(token: str) -> str:
    """What the dashboard's cookie holds: derived from the token, so the cookie opens the dashboard
    and its data but is not itself the bearer token of /metrics."""
    return hmac.new(token.encode(), b"flask-audit dashboard", hashlib.sha256).hexdigest()


def _cookie_matches(token: str) -> bool:
    given = request.cookies.get(COOKIE_NAME)
    return bool(given) and hmac.compare_digest(given.encode(), _cookie_value(token).encode())


def require_token() -> bool:
    """When AUDIT_MONITORING_TOKEN is set, demand it: a bearer header (constant-time compare) or
    the dashboard's cookie. Returns whether a token was set and shown, which is what lets a route
    serve event content; without a token, routes serve counters only."""
    token = current_runtime().config.monitoring_token
    if token is None:
        return False
    if bearer_matches(token) or _cookie_matches(token):
        return True
    abort(401)


def audit_metrics() -> Any:
    """GET audit-metrics: health, metrics and recommendations from the shared counters."""
    require_token()
    runtime = current_runtime()
    try:
        snapshot = runtime.metrics.snapshot()
    except redis.RedisError as exc:
        logger.warning("audit-metrics: Redis unreachable: %s", exc)  # details for the log only
        body = {
            "health": {"status": "unhealthy", "issues": ["Redis unreachable"]},
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
    runtime = current_runtime()
    try:
        snapshot = runtime.metrics.snapshot()
    except redis.RedisError as exc:
        logger.warning("health: Redis unreachable: %s", exc)
        body = {"status": "unhealthy", "services": {"redis": "disconnected", "audit_worker": "unknown"}}
        return jsonify(body), 503
    worker = "running" if snapshot.workers_alive else "stopped"
    status = "healthy" if worker == "running" else "degraded"
    return jsonify({"status": status, "services": {"redis": "connected", "audit_worker": worker}})


def prometheus_metrics() -> Any:
    """GET /metrics: Prometheus text format, one Redis round trip."""
    require_token()
    try:
        snapshot = current_runtime().metrics.snapshot()
    except redis.RedisError as exc:
        logger.warning("/metrics: Redis unreachable: %s", exc)
        abort(503)
    return Response(exposition(snapshot), mimetype="text/plain; version=0.0.4; charset=utf-8")


def dashboard() -> Any:
    """The dashboard page. ``?token=`` (a browser cannot send a header when it opens a page) is
    traded for an HttpOnly, SameSite=Strict cookie and taken out of the address at once."""
    token = current_runtime().config.monitoring_token
    given = request.args.get("token")
    if given is not None:
        if token is None or not hmac.compare_digest(given.encode(), token.encode()):
            abort(401)
        response = redirect(url_for(".dashboard"), code=303)
        response.set_cookie(
            COOKIE_NAME,
            _cookie_value(token),
            httponly=True,
            samesite="Strict",
            secure=request.is_secure,
            path=current_runtime().config.monitoring_url_prefix,
        )
        return response
    require_token()
    return render_template("flask_audit/dashboard.html")


def dashboard_data() -> Any:
    """Everything the dashboard draws, in one JSON document. The latest critical events are event
    content: they are listed only when AUDIT_MONITORING_TOKEN is set (and was shown)."""
    may_see_events = require_token()
    runtime = current_runtime()
    try:
        snapshot = runtime.metrics.snapshot()
        series = runtime.metrics.series(60)
    except redis.RedisError as exc:
        logger.warning("dashboard data: Redis unreachable: %s", exc)
        body = {
            "health": {"status": "unhealthy", "issues": ["Redis unreachable"]},
            "services": {"redis": "disconnected", "database": "unknown"},
        }
        return jsonify(body), 503
    assessment = assess(snapshot, thresholds_of(runtime.config))
    critical: list[dict[str, Any]] | None = None
    database = "connected"
    try:
        if may_see_events:
            critical = [
                to_dict(r) for r in runtime.store.recent(DASHBOARD_CRITICAL_EVENTS, category="critical")
            ]
        else:
            runtime.store.ping()
    except AuditError as exc:  # the dashboard still shows Redis's numbers when the database is down
        logger.warning("dashboard data: database unreachable: %s", exc)
        database, critical = "disconnected", [] if may_see_events else None
        assessment.status = "unhealthy"
        assessment.issues = [*assessment.issues, "Database unreachable"]
    return jsonify(
        {
            "health": {"status": assessment.status, "issues": assessment.issues},
            "services": {"redis": "connected", "database": database},
            "snapshot": {
                "queue_length": snapshot.waiting,
                "failed_length": snapshot.failed_length,
                "current_batch_size": snapshot.current_batch_size,
                "avg_batch_time_ms": snapshot.avg_batch_time_ms,
                "workers_alive": snapshot.workers_alive,
                "totals": snapshot.totals,
                "integrity": {
                    "last_verified_seal": snapshot.integrity_last_seal,
                    "problems": snapshot.integrity_problems,
                    "unsealed_rows": snapshot.unsealed_rows,
                    "verified_at": snapshot.integrity_verified_at or None,
                },
            },
            "series": series,
            "critical_events": critical,
        }
    )


def private(response: Response) -> Response:
    """Answers about the audit log are never cached, never leak their address through Referer,
    and are never sniffed into another type (the monitoring routes and the viewer)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _private(response: Response) -> Response:
    private(response)
    if request.endpoint == "audit_monitoring.dashboard":
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        )
    return response


def monitoring_blueprint() -> Blueprint:
    """A new blueprint per app, so that apps with different prefixes can share a process."""
    bp = Blueprint(
        "audit_monitoring",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/dashboard/static",
    )
    bp.after_request(_private)
    bp.add_url_rule("/audit-metrics", "audit_metrics", audit_metrics, methods=["GET"])
    bp.add_url_rule("/health", "health", health, methods=["GET"])
    bp.add_url_rule("/dashboard", "dashboard", dashboard, methods=["GET"])
    bp.add_url_rule("/dashboard/data", "dashboard_data", dashboard_data, methods=["GET"])
    return bp


def metrics_blueprint() -> Blueprint:
    bp = Blueprint("audit_prometheus", __name__)
    bp.after_request(_private)
    bp.add_url_rule("/metrics", "metrics", prometheus_metrics, methods=["GET"])
    return bp
