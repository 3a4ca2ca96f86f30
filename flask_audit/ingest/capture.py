"""What the current request says about an event: client IP, user agent, request id, user id."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from typing import Any

from flask import Response, request

from flask_audit import safety
from flask_audit.events.sanitize import normal_ip

REQUEST_ID_HEADER = "X-Request-ID"
#: where the request id is cached for the rest of the request
ENVIRON_KEY = "flask_audit.request_id"
#: a client's request id is kept only if it looks like one; otherwise a new one is made
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
#: new request ids: unique, not secret, so no system call. ``os.urandom`` released the GIL on
#: every request, and each release woke a thread waiting for it (the buffer's flush thread) in
#: vain: in buffered mode that doubled audit.log's cost in a request (bench/request_cost.py). A
#: generator of its own, so that the ids a client sees say nothing of the event ids' draws.
_request_ids = random.Random()
os.register_at_fork(after_in_child=_request_ids.seed)


def request_id(environ: dict[str, Any] | None = None) -> str:
    """This request's id: the client's X-Request-ID when it is sane, else a new one.

    Cached in the WSGI environ: the hook runs on every request, and a dict lookup there is far
    cheaper than ``g`` or werkzeug's ``Headers``.
    """
    if environ is None:
        environ = request._get_current_object().environ  # type: ignore[attr-defined]
    rid = environ.get(ENVIRON_KEY)
    if rid is None:
        given = environ.get("HTTP_X_REQUEST_ID")
        rid = given if given and REQUEST_ID_PATTERN.match(given) else f"{_request_ids.getrandbits(128):032x}"
        environ[ENVIRON_KEY] = rid
    return rid


def echo_request_id(response: Response) -> Response:
    """after_request hook: send the request id back so clients can quote it (unless the view set
    one itself)."""
    headers = response.headers
    if REQUEST_ID_HEADER not in headers:
        headers[REQUEST_ID_HEADER] = request_id()
    return response


def fill_from_request(
    fields: dict[str, Any],
    user_loader: Callable[[], Any] | None,
    tenant_loader: Callable[[], Any] | None = None,
) -> None:
    """Fill the request fields the caller left out; explicit arguments win. No-op outside a request."""
    # The request object itself, as Flask's docs get current_app's: has_request_context() and
    # then the proxy's attribute look-up took a tenth of audit.log's instructions.
    try:
        environ = request._get_current_object().environ  # type: ignore[attr-defined]
    except RuntimeError:  # outside a request
        return
    # REMOTE_ADDR is what ProxyFix rewrites, as request.remote_addr reads
    if fields.get("ip_address") is None:
        fields["ip_address"] = _valid_ip(environ.get("REMOTE_ADDR"))
    if fields.get("user_agent") is None:
        fields["user_agent"] = environ.get("HTTP_USER_AGENT")
    if fields.get("request_id") is None:
        fields["request_id"] = request_id(environ)
    if fields.get("user_id") is None and user_loader is not None:
        try:
            fields["user_id"] = user_loader()
        except Exception as exc:  # a broken loader must not break the request
            safety.swallowed(exc, "user_loader")
    if fields.get("tenant_id") is None and tenant_loader is not None:
        try:
            fields["tenant_id"] = tenant_loader()
        except Exception as exc:
            safety.swallowed(exc, "tenant_loader")


def _valid_ip(value: str | None) -> str | None:
    """remote_addr is not always an IP (a Unix socket, a test client): keep it only when it is.
    It is passed on as it came, so that dropping a zone id is recorded on the event."""
    return value if value and normal_ip(value) is not None else None
