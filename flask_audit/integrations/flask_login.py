"""Login events from Flask-Login's signals (``AUDIT_FLASK_LOGIN=True``; ``pip install
flask-audit[login]``).

Flask-Login signals a login, a logout and an unauthorized request; each becomes an event with the
user and the request's fields. It does not signal a failed login (it never sees the password
check), so the view records it with one line: ``login_failed(username)``. When FlaskAudit has no
``user_loader``, the current user of Flask-Login is the user of every event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, request

from flask_audit.vocabulary import EventType

if TYPE_CHECKING:
    from flask_audit.extension import FlaskAudit

#: the events this integration records, registered with the app's vocabulary
LOGIN_EVENT_TYPES: tuple[EventType, ...] = (
    EventType(
        "user_logged_in",
        "info",
        "A user logged in (outcome failure: the credentials were wrong).",
        "user",
        "authentication:logon",
    ),
    EventType("user_logged_out", "info", "A user logged out.", "user", "authentication:logoff"),
    EventType("user_unauthorized", "warning", "A request needed a login it did not have.", "user"),
)


def connect(audit: FlaskAudit, app: Flask) -> None:
    """Record ``app``'s login, logout and unauthorized requests through ``audit``."""
    try:
        import flask_login
    except ImportError:  # pragma: no cover - the extra is missing
        raise RuntimeError("AUDIT_FLASK_LOGIN needs Flask-Login: pip install 'flask-audit[login]'") from None
    for event_type in LOGIN_EVENT_TYPES:
        if event_type.name not in audit.vocabulary:
            audit.vocabulary.register(event_type)
    if audit.user_loader is None:
        audit.user_loader = _current_user_id

    def logged_in(sender: Flask, user: Any, **_: Any) -> None:
        audit.log("user_logged_in", user_id=user.get_id(), resource_type="user", resource_id=user.get_id())

    def logged_out(sender: Flask, user: Any, **_: Any) -> None:
        user_id = user.get_id() if user is not None and user.is_authenticated else None
        audit.log("user_logged_out", user_id=user_id, resource_type="user", resource_id=user_id)

    def unauthorized(sender: Flask, **_: Any) -> None:
        audit.log(
            "user_unauthorized",
            outcome="denied",
            metadata={"path": request.path, "endpoint": request.endpoint, "method": request.method},
        )

    # weak=False: the receivers live as long as the app (they are closures over this audit)
    flask_login.user_logged_in.connect(logged_in, app, weak=False)
    flask_login.user_logged_out.connect(logged_out, app, weak=False)
    flask_login.user_unauthorized.connect(unauthorized, app, weak=False)


def login_failed(username: str | None = None, reason: str = "bad credentials", **fields: Any) -> str:
    """Record a failed login from the view that checked the password; returns the event_id."""
    audit = current_app.extensions["audit"]
    metadata = {"username": username, "reason": reason, **fields.pop("metadata", {})}
    return audit.log("user_logged_in", outcome="failure", resource_type="user", metadata=metadata, **fields)


def _current_user_id() -> str | None:
    import flask_login

    user = flask_login.current_user
    return user.get_id() if user is not None and user.is_authenticated else None
