"""A small API that audits what its users do: API keys, quota warnings, bans, upgrades.

Run it with ``make run`` (web, worker and clock), or ``flask --app examples.app run`` alone.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Any

from flask import Flask, abort, jsonify, request

from flask_audit import FlaskAudit
from flask_audit.vocabulary import ORIGINAL_DESIGN

audit = FlaskAudit(
    user_loader=lambda: request.headers.get("X-User-ID"),
    tenant_loader=lambda: request.headers.get("X-Tenant-ID"),  # each customer's trail apart
)
audit.register_event_types(ORIGINAL_DESIGN)  # each type's category, and a warning for a typo

#: quota of API calls per user and month in this example
MONTHLY_QUOTA = 10000
#: keys this demo keeps in memory (a real app has a database): oldest forgotten first
MAX_KEYS = 10000


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """App factory: the audit extension reads AUDIT_* from the config or the environment."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(config or {})
    audit.init_app(app)
    keys: OrderedDict[str, dict[str, Any]] = OrderedDict()
    usage: dict[str, int] = {}

    @app.post("/api/v1/keys")
    def create_key():
        body = request.get_json(silent=True) or {}
        key_id = secrets.token_hex(8)
        keys[key_id] = {
            "name": body.get("name", "default"),
            "permissions": body.get("permissions", ["read"]),
        }
        if len(keys) > MAX_KEYS:
            keys.popitem(last=False)
        audit.log(
            "api_key_created",
            resource_type="api_key",
            resource_id=key_id,
            description=f"New API key created: {keys[key_id]['name']}",
            metadata={"key_name": keys[key_id]["name"], "permissions": keys[key_id]["permissions"]},
        )
        return jsonify({"id": key_id, **keys[key_id]}), 201

    @app.delete("/api/v1/keys/<key_id>")
    @audit.audited("api_key_deleted", resource_type="api_key", resource_id="key_id")
    def delete_key(key_id: str):
        if keys.pop(key_id, None) is None:
            abort(404)
        return "", 204

    @app.post("/api/v1/keys/<key_id>/rotate")
    @audit.audited("api_key_rotated", resource_type="api_key", resource_id="key_id")
    def rotate_key(key_id: str):
        if key_id not in keys:
            abort(404)
        return jsonify({"id": key_id, "secret": secrets.token_urlsafe(24)})

    @app.post("/api/v1/usage")
    def record_usage():
        user = request.headers.get("X-User-ID", "anonymous")
        calls = int((request.get_json(silent=True) or {}).get("calls", 1))
        before, usage[user] = usage.get(user, 0), usage.get(user, 0) + calls
        for percent, event_type in (
            (100, "usage_limit_reached"),
            (90, "usage_warning_90_percent"),
            (80, "usage_warning_80_percent"),
        ):
            if before < MONTHLY_QUOTA * percent // 100 <= usage[user]:
                audit.log(  # the category ("warning") comes from the registered vocabulary
                    event_type,
                    resource_type="usage_quota",
                    description=f"User reached {percent}% of monthly quota",
                    metadata={
                        "current_usage": usage[user],
                        "quota_limit": MONTHLY_QUOTA,
                        "percentage": percent,
                    },
                )
                break
        return jsonify({"user": user, "usage": usage[user], "quota": MONTHLY_QUOTA})

    @app.post("/api/v1/accounts/<user_id>/ban")
    def ban(user_id: str):
        violations = int((request.get_json(silent=True) or {}).get("violations", 3))
        event_id = audit.critical(
            "permanent_ban_applied",
            user_id=user_id,
            resource_type="account",
            resource_id=user_id,
            description=f"User permanently banned after {violations} violations",
            metadata={"violation_count": violations, "ban_level": "PERMANENT"},
        )
        return jsonify({"banned": user_id, "audit_event_id": event_id})

    @app.post("/api/v1/accounts/<user_id>/upgrade")
    @audit.audited("account_upgraded", resource_type="account", resource_id="user_id")
    def upgrade(user_id: str):
        plan = (request.get_json(silent=True) or {}).get("plan", "pro")
        if plan not in ("pro", "enterprise"):
            audit.annotate(outcome="failure", metadata={"requested_plan": str(plan)[:40]})
            return jsonify({"error": "unknown plan"}), 200
        if request.headers.get("X-User-ID") not in (None, user_id):
            return jsonify({"error": "only the account's owner may upgrade it"}), 403  # denied
        return jsonify({"user": user_id, "plan": plan})

    return app
