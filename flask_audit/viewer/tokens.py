"""Viewer tokens: short-lived, signed, optionally scoped to one tenant.

``audit.viewer_token(tenant_id=..., expires_in=...)`` mints one for a SaaS to put in its own page
(``<prefix>/?token=...``); the viewer trades it, or the API token, for a cookie holding a token
of the same kind. The signature is HMAC (itsdangerous, which Flask already uses) under
``AUDIT_VIEWER_SECRET``, else the app's ``SECRET_KEY``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask
from itsdangerous import BadSignature, URLSafeSerializer

from flask_audit.errors import AuditConfigError

SALT = "flask-audit-viewer"
#: the cookie the viewer's token lives in (HttpOnly; the page's script never sees it)
COOKIE = "audit_viewer"
#: the longest a token may live: a leaked link stops working within a day at most
MAX_EXPIRES_IN = 86_400


@dataclass(frozen=True)
class Grant:
    """What a valid token allows: one tenant's rows, or every tenant's (None), until ``expires``."""

    tenant_id: str | None
    expires: int


def _serializer(app: Flask, secret: str | None) -> URLSafeSerializer:
    key = secret or app.secret_key
    if not key:
        raise AuditConfigError("AUDIT_VIEWER_SECRET", "is needed to sign viewer tokens (or set SECRET_KEY)")
    return URLSafeSerializer(key, salt=SALT)


def mint(app: Flask, secret: str | None, tenant_id: str | None, expires_in: int) -> str:
    if not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise ValueError(f"expires_in: must be 1 to {MAX_EXPIRES_IN} seconds, not {expires_in!r}")
    payload = {"t": None if tenant_id is None else str(tenant_id), "e": int(time.time()) + int(expires_in)}
    return _serializer(app, secret).dumps(payload)


def read(app: Flask, secret: str | None, token: str) -> Grant | None:
    """The grant of a valid, unexpired token; None for anything else."""
    if not token or len(token) > 1000:
        return None
    try:
        payload = _serializer(app, secret).loads(token)
    except (BadSignature, AuditConfigError, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("e"), int) or payload["e"] < time.time():
        return None
    tenant = payload.get("t")
    return Grant(tenant if isinstance(tenant, str) else None, payload["e"])
