"""The query API: GET /api/v1/audit-logs (filters, free text, keyset cursor), .../export
(the same rows streamed as CSV or JSON lines), .../event-types, .../<event_id>,
.../<event_id>/proof and .../<event_id>/seal.

Off (404) unless AUDIT_API_TOKEN is set or FlaskAudit was given an ``authorize`` callback; wrong or
missing credentials get 401 with no detail. Credentials: the API token as a bearer token, the
viewer's cookie (a signed token, maybe scoped to a tenant), or what ``authorize`` says.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    request,
    stream_with_context,
)

from flask_audit.errors import AuditError, AuditValidationError
from flask_audit.formats.lines import export_lines
from flask_audit.integrity import proofs
from flask_audit.runtime import current_runtime
from flask_audit.storage.query import (
    EQUALITY_FILTERS,
    Filters,
    page,
    parse_filters,
    parse_limit,
    stream,
    to_dict,
)
from flask_audit.viewer import tokens

logger = logging.getLogger(__name__)

#: the query-string keys the list route understands: the declared filters, then the others
KNOWN_ARGS = {*EQUALITY_FILTERS, "since", "until", "limit", "cursor", "q"}
#: the export's keys: the list's, and the format
EXPORT_ARGS = (KNOWN_ARGS - {"limit", "cursor"}) | {"format"}


def bearer_matches(expected: str | None) -> bool:
    """Constant-time comparison of the request's bearer token with ``expected``."""
    header = request.headers.get("Authorization", "")
    if not expected or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].encode(), expected.encode())


def api_enabled() -> bool:
    """The API (and the viewer on it) is on once a token or an ``authorize`` callback is set."""
    audit = current_app.extensions["audit"]
    return audit.runtime().config.api_token is not None or audit.authorize is not None


def viewer_grant() -> tokens.Grant | None:
    """What the request may read: every tenant (the API token, or ``authorize`` saying True),
    one tenant (a viewer token in the cookie, or ``authorize`` naming a tenant), or nothing."""
    audit = current_app.extensions["audit"]
    config = audit.runtime().config
    if bearer_matches(config.api_token):
        return tokens.Grant(None, 0)
    cookie = request.cookies.get(tokens.COOKIE)
    if cookie:
        grant = tokens.read(current_app, config.viewer_secret, cookie)
        if grant is not None:
            return grant
    verdict = audit.authorize(request) if audit.authorize is not None else None
    if verdict is None or verdict is False:
        return None
    return tokens.Grant(None if verdict is True else str(verdict), 0)


def _guard() -> None:
    """The token opens every tenant's rows; a viewer token or ``authorize`` may open one
    tenant's rows only (kept in ``g.audit_tenant``)."""
    if not api_enabled():
        abort(404)
    grant = viewer_grant()
    if grant is None:
        abort(401)
    g.audit_tenant = grant.tenant_id


def _scoped(row: Any) -> Any:
    """A row of another tenant than the caller's does not exist for the caller."""
    if g.audit_tenant is not None and row.tenant_id != g.audit_tenant:
        abort(404)
    return row


def _bad_request(exc: AuditValidationError) -> Any:
    return jsonify({"error": "invalid filter", "field": exc.field, "message": str(exc)}), 400


def _filters(known: set[str]) -> tuple[Filters, dict[str, str]]:
    """The request's filters and arguments, scoped to the caller's tenant (another tenant's is a
    403)."""
    args = request.args
    unknown = sorted(set(args) - known)
    if unknown:
        raise AuditValidationError(unknown[0], "is not a known filter")
    tenant = g.audit_tenant
    if tenant is not None:
        if args.get("tenant_id", tenant) != tenant:
            abort(make_response(jsonify({"error": "this token is scoped to another tenant"}), 403))
        args = {**args.to_dict(), "tenant_id": tenant}
    return parse_filters(args), dict(args)


def list_logs() -> Any:
    filters, args = _filters(KNOWN_ARGS)
    limit = parse_limit(args.get("limit"))
    rows, next_cursor = page(_store(), filters, limit, args.get("cursor") or None)
    return jsonify({"items": [to_dict(row) for row in rows], "next_cursor": next_cursor})


def export_logs() -> Any:
    """The rows of the list's filters, oldest first, streamed: CSV (cells never start a formula)
    or JSON lines, as ``flask audit export`` writes them."""
    filters, args = _filters(EXPORT_ARGS)
    fmt = args.get("format", "jsonl")
    if fmt not in ("csv", "jsonl"):
        raise AuditValidationError("format", "must be csv or jsonl")
    store = _store()

    def generate() -> Iterator[str]:
        yield from export_lines(fmt, stream(store, filters))

    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    response = Response(stream_with_context(generate()), mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename=audit-log.{fmt}"
    return response


def event_types() -> Any:
    """The registered event types (the viewer's filter offers them)."""
    vocabulary = current_app.extensions["audit"].vocabulary
    return jsonify({"items": [{"name": t.name, "category": t.category} for t in vocabulary]})


def get_seal(event_id: str) -> Any:
    """Whether the event's row is sealed and its proof checks: verified, unsealed or broken."""
    row = _scoped(_row(event_id))
    proof = proofs.build(_store(), row.id)
    if proof is None:
        return jsonify({"status": "unsealed"})
    result = proofs.check(proof, current_runtime().signer)
    return jsonify(
        {
            "status": "verified" if result["ok"] else "broken",
            "seal": result["seal"],
            "signature": result["signature"],
            "problems": result["problems"],
        }
    )


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
    bp.add_url_rule("/export", "export_logs", export_logs, methods=["GET"])
    bp.add_url_rule("/event-types", "event_types", event_types, methods=["GET"])
    bp.add_url_rule("/<event_id>/seal", "get_seal", get_seal, methods=["GET"])
    bp.add_url_rule("/<event_id>", "get_log", get_log, methods=["GET"])
    bp.add_url_rule("/<event_id>/proof", "get_proof", get_proof, methods=["GET"])
    return bp
