"""The viewer's routes: the page (list and details), the token exchange, the headers."""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, redirect, render_template, request

from flask_audit.api import api_enabled, viewer_grant
from flask_audit.monitoring.routes import private
from flask_audit.viewer import tokens

COOKIE = tokens.COOKIE
#: how long a session opened with the API token lasts
API_TOKEN_SESSION_SECONDS = 8 * 3600


def _headers(response: Response) -> Response:
    """The monitoring routes' private headers, and a policy of the viewer's own."""
    config = current_app.extensions["audit"].runtime().config
    ancestors = config.viewer_frame_ancestors or "'none'"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        f" connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
    )
    return private(response)


def _page(event_id: str | None = None) -> Any:
    config = current_app.extensions["audit"].runtime().config
    if not api_enabled():
        return Response("not found\n", 404, mimetype="text/plain")
    token = request.args.get("token")
    if token is not None:
        return _exchange(token)
    grant = viewer_grant()
    if grant is None:
        return Response(
            "Open the audit viewer with a token: <prefix>/?token=...\n", 401, mimetype="text/plain"
        )
    html = render_template(
        "flask_audit/viewer.html",
        api=config.api_url_prefix,
        prefix=config.viewer_url_prefix,
        tenant=grant.tenant_id or "",
        event_id=event_id or "",
    )
    return Response(html, mimetype="text/html")


def _exchange(token: str) -> Any:
    """A token in the address becomes a cookie, and the address loses it (a redirect)."""
    audit = current_app.extensions["audit"]
    config = audit.runtime().config
    secret = config.viewer_secret
    grant = tokens.read(current_app, secret, token)
    if grant is None and config.api_token and hmac.compare_digest(token.encode(), config.api_token.encode()):
        cookie = tokens.mint(current_app, secret, None, API_TOKEN_SESSION_SECONDS)
        grant = tokens.Grant(None, int(time.time()) + API_TOKEN_SESSION_SECONDS)
    elif grant is not None:
        cookie = token
    else:
        return Response("this token is not valid (or has expired)\n", 401, mimetype="text/plain")
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
    target = request.path + ("?" + urlencode(rest) if rest else "")
    response = redirect(target, 303)
    embedded = bool(config.viewer_frame_ancestors)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=max(1, grant.expires - int(time.time())),
        path="/",
        httponly=True,
        secure=embedded or request.is_secure,
        samesite="None" if embedded else "Lax",  # framed by another site: sent only if None
    )
    return response


def viewer_blueprint() -> Blueprint:
    bp = Blueprint(
        "audit_viewer",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    bp.add_url_rule("/", "index", _page, methods=["GET"])
    bp.add_url_rule("/events/<event_id>", "event", _page, methods=["GET"])
    bp.after_request(_headers)
    return bp
