"""The query API: GET /api/v1/audit-logs (filters, keyset cursor), GET .../<event_id> and
GET .../<event_id>/proof.

Off (404) unless AUDIT_API_TOKEN is set or FlaskAudit was given an ``authorize`` callback; wrong or
missing credentials get 401 with no detail.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, request

from flask_audit.errors import AuditError, AuditValidationError
from flask_audit.integrity import proofs
from flask_audit.runtime import current_runtime
from flask_audit.storage.query import (
    EQUALITY_FILTERS,
    page,
    parse_filters,
    parse_limit,
    to_dict,
)

logger = logging.getLogger(__name__)

#: the query-string keys the list route understands: the declared filters, then the others
KNOWN_ARGS = {*EQUALITY_FILTERS, "since", "until", "limit", "cursor"}


def bearer_matches(expected: str | None) -> bool:
    """Constant-time comparison of the request's bearer token with ``expected``."""
    header = request.headers.get("Authorization", "")
    if not expected or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].encode(), expected.encode())


def _guard() -> None:
    """The token opens every tenant's rows; ``authorize`` may return True (every tenant) or a
    tenant id (that tenant's rows only, kept in ``g.audit_tenant``)."""
    audit = current_app.extensions["audit"]
    token = audit.runtime().config.api_token
    if token is None and audit.authorize is None:
        abort(404)
    g.audit_tenant = None
    if bearer_matches(token):
        return
    verdict = audit.authorize(request) if audit.authorize is not None else None
    if verdict is None or verdict is False:
        abort(401)
    if verdict is not True:
        g.audit_tenant = str(verdict)


def _scoped(row: Any) -> Any:
    """A row of another tenant than the caller's does not exist for the caller."""
    if g.audit_tenant is not None and row.tenant_id != g.audit_tenant:
        abort(404)
    return row


def _bad_request(exc: AuditValidationError) -> Any:
    return jsonify({"error": "invalid filter", "field": exc.field, "message": str(exc)}), 400


def list_logs() -> Any:
    args = request.args
    unknown = sorted(set(args) - KNOWN_ARGS)
    if unknown:
        raise AuditValidationError(unknown[0], "is not a known filter")
    tenant = g.audit_tenant
    if tenant is not None:
        if args.get("tenant_id", tenant) != tenant:
            return jsonify({"error": "this token is scoped to another tenant"}), 403
        args = {**args.to_dict(), "tenant_id": tenant}
    filters = parse_filters(args)
    limit = parse_limit(args.get("limit"))
    rows, next_cursor = page(_store(), filters, limit, args.get("cursor") or None)
    return jsonify({"items": [to_dict(row) for row in rows], "next_cursor": next_cursor})


def _row(event_id: str) -> Any:
    try:
        key = uuid.UUID(event_id)
    except ValueError:
        raise AuditValidationError("event_id", "must be a UUID") from None
    store = _store()
    model = store.model
    with store.translate():
        row = model.get_or_none(model.event_id == key)
    if row is None:
        abort(404)
    return row


def get_log(event_id: str) -> Any:
    return jsonify(to_dict(_scoped(_row(event_id))))


def get_proof(event_id: str) -> Any:
    """The event's proof of inclusion in a seal (see flask_audit.integrity.proofs)."""
    proof = proofs.build(_store(), _scoped(_row(event_id)).id)
    if proof is None:
        interval = current_runtime().config.seal_interval_seconds
        return jsonify({"error": f"not sealed yet: rows are sealed every {interval:g} s"}), 409
    return jsonify(proof)


def _unavailable(exc: AuditError) -> Any:
    """The database failed under a route: its details go to the log, not to the caller."""
    logger.warning("query API: %s", exc)
    return jsonify({"error": "the audit database is unavailable"}), 503


def _store():
    return current_runtime().store


def api_blueprint() -> Blueprint:
    bp = Blueprint("audit_api", __name__)
    bp.before_request(_guard)
    # a bad parameter (a cursor included: page decodes it before any query) is the caller's 400;
    # any other AuditError comes from the database
    bp.register_error_handler(AuditValidationError, _bad_request)
    bp.register_error_handler(AuditError, _unavailable)
    bp.add_url_rule("", "list_logs", list_logs, methods=["GET"])
    bp.add_url_rule("/<event_id>", "get_log", get_log, methods=["GET"])
    bp.add_url_rule("/<event_id>/proof", "get_proof", get_proof, methods=["GET"])
    return bp
