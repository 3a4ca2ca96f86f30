"""FlaskAudit: the extension object, its request hooks, and log / critical / audited."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis
from flask import Flask, current_app, has_app_context

from flask_audit import safety
from flask_audit.api import api_blueprint
from flask_audit.cli import audit_cli
from flask_audit.config import load_config
from flask_audit.errors import AuditValidationError
from flask_audit.events import schema
from flask_audit.events.event import CATEGORIES, AuditEvent, build_event, check_event_type
from flask_audit.ingest.capture import echo_request_id, fill_from_request
from flask_audit.monitoring.routes import metrics_blueprint, monitoring_blueprint
from flask_audit.runtime import AuditRuntime
from flask_audit.vocabulary import EventType, Vocabulary

F = TypeVar("F", bound=Callable[..., Any])
#: the keywords of ``log`` and ``critical`` that are declared client fields (and metadata)
CLIENT_FIELDS = tuple(f.name for f in schema.FIELDS if f.source == schema.CLIENT)


def _client_fields(scope: dict[str, Any]) -> dict[str, Any]:
    """The declared client fields among a call's arguments (``log``'s and ``critical``'s)."""
    return {name: scope[name] for name in CLIENT_FIELDS}


#: the keywords ``audited`` passes on to ``log`` (its own ``resource_id`` aside)
LOG_KEYWORDS = frozenset({*CLIENT_FIELDS, "event_category"} - {"resource_id"})


class FlaskAudit:
    """Audit logging for a Flask app.

    ``FlaskAudit(app)`` or ``FlaskAudit()`` then ``init_app(app)`` in a factory. Options given here
    (``AUDIT_*`` keys) win over ``app.config``; ``redis`` passes a ready client (tests, or an app
    that already has one); ``user_loader`` returns the current user's id and ``tenant_loader`` the
    current tenant's; ``authorize`` is given the request and says whether it may use the query API
    (besides AUDIT_API_TOKEN): True for every tenant, a tenant id for that tenant's rows only.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        redis: redis.Redis | None = None,
        user_loader: Callable[[], Any] | None = None,
        tenant_loader: Callable[[], Any] | None = None,
        authorize: Callable[[Any], Any] | None = None,
        **options: Any,
    ) -> None:
        self.user_loader = user_loader
        self.tenant_loader = tenant_loader
        self.authorize = authorize
        self._redis = redis
        self._options = options
        #: the registered event types (see ``register_event_type``)
        self.vocabulary = Vocabulary()
        self._runtimes: weakref.WeakKeyDictionary[Flask, AuditRuntime] = weakref.WeakKeyDictionary()
        #: the runtime while this extension serves a single app: found without a context lookup
        self._only: AuditRuntime | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the configuration, register the hooks and the monitoring routes."""
        if "audit" in app.extensions:
            raise RuntimeError(
                "FlaskAudit is already registered on this app. Create one FlaskAudit per app, or"
                " use the existing one from app.extensions['audit']."
            )
        config = load_config(app, self._options)
        self._runtimes[app] = AuditRuntime(config, redis_client=self._redis)
        self._only = self._runtimes[app] if len(self._runtimes) == 1 else None
        app.after_request(echo_request_id)
        app.cli.add_command(audit_cli)  # also an entry point; this makes app.test_cli_runner() see it
        app.register_blueprint(monitoring_blueprint(), url_prefix=config.monitoring_url_prefix)
        app.register_blueprint(metrics_blueprint())
        app.register_blueprint(api_blueprint(), url_prefix=config.api_url_prefix)
        app.extensions["audit"] = self

    def register_event_type(
        self,
        name: str,
        *,
        category: str = "info",
        description: str = "",
        resource_type: str | None = None,
    ) -> EventType:
        """Declare an event type: its default category (used when ``log`` gets none), what it
        means, and the kind of resource it concerns. ``flask audit event-types`` lists them."""
        return self.vocabulary.register(EventType(name, category, description, resource_type))

    def register_event_types(self, types: Iterable[EventType]) -> None:
        """Declare several, e.g. ``flask_audit.vocabulary.ORIGINAL_DESIGN``."""
        self.vocabulary.extend(types)

    def runtime(self, app: Flask | None = None) -> AuditRuntime:
        """The state of ``app``, of the current app, or of the only app this extension serves."""
        if app is None and self._only is not None:
            return self._only
        if app is None and has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        if app is not None:
            try:
                return self._runtimes[app]
            except KeyError:
                raise RuntimeError("FlaskAudit.init_app was not called for this app") from None
        runtimes = list(self._runtimes.values())
        if len(runtimes) == 1:
            return runtimes[0]
        raise RuntimeError("no app context: call inside `with app.app_context():`")

    def log(
        self,
        event_type: str,
        *,
        user_id: str | int | None = None,
        resource_type: str | None = None,
        resource_id: str | int | None = None,
        event_category: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        outcome: str = "success",
        tenant_id: str | int | None = None,
    ) -> str:
        """Record an event without waiting for the database; returns its event_id.

        Raises ``AuditValidationError`` (a ``ValueError``) for bad input. Never raises because
        Redis or the database is unhealthy: the event is written through or spooled instead.
        """
        fields = _client_fields(locals())
        runtime = self.runtime()
        category = self.vocabulary.category_for(event_type, event_category, runtime.config.strict_event_types)
        event = self._build(runtime, event_type, category, outcome, fields)
        if runtime.recorder is not None:  # testing: memory only
            runtime.recorder.append(event)
            return event.event_id
        try:
            runtime.write_path.submit(event)
        except Exception as exc:  # the boundary of the request path: nothing gets past it
            safety.swallowed(exc, "audit.log")
            runtime.write_path.spool_entries([event.to_entry()])
        return event.event_id

    def critical(
        self,
        event_type: str,
        *,
        user_id: str | int | None = None,
        resource_type: str | None = None,
        resource_id: str | int | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        outcome: str = "success",
        tenant_id: str | int | None = None,
    ) -> str:
        """Record a critical event synchronously: stored (or safely queued) when this returns.

        Takes the keywords of ``log`` but ``event_category``, which is always ``critical``.
        Raises ``AuditValidationError`` for bad input, and ``AuditWriteError`` only when the
        database, Redis and the spool all failed.
        """
        fields = _client_fields(locals())
        runtime = self.runtime()
        self.vocabulary.category_for(event_type, "critical", runtime.config.strict_event_types)
        event = self._build(runtime, event_type, "critical", outcome, fields)
        if runtime.recorder is not None:  # testing: memory only
            runtime.recorder.append(event)
            return event.event_id
        runtime.write_path.write_critical(event)
        return event.event_id

    def audited(
        self,
        event_type: str,
        *,
        resource_id: str | Callable[..., Any] | None = None,
        **fields: Any,
    ) -> Callable[[F], F]:
        """Decorate a view: record ``event_type`` after it succeeds (2xx or 3xx).

        ``resource_id`` names a view argument, or is a callable given the response and the
        view's arguments. Other keywords are passed to ``log``. The event_type, the category and
        the keywords are checked here, when the view is decorated, so that a mistake in them fails
        at import instead of costing every request its event.
        """
        check_event_type(event_type)
        unknown = sorted(set(fields) - LOG_KEYWORDS)
        if unknown:
            raise TypeError(f"audited() got an unexpected keyword argument {unknown[0]!r}")
        if fields.get("event_category", "info") not in (*CATEGORIES, None):
            raise AuditValidationError("event_category", "must be one of info, warning, critical")

        def decorate(view: F) -> F:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                response = current_app.make_response(view(*args, **kwargs))
                if 200 <= response.status_code < 400:
                    try:
                        rid = (
                            resource_id(response, **kwargs)
                            if callable(resource_id)
                            else kwargs.get(resource_id)
                            if resource_id
                            else None
                        )
                        if rid is not None and not isinstance(rid, (str, int)):
                            rid = str(rid)  # a converter's value (uuid, path): its text is the id
                        self.log(event_type, resource_id=rid, **fields)
                    except Exception as exc:  # the view already succeeded: do not turn it into a 500
                        safety.swallowed(exc, f"audited({event_type})")
                return response

            return wrapper  # type: ignore[return-value]

        return decorate

    def _build(
        self, runtime: AuditRuntime, event_type: str, category: str, outcome: str, fields: dict[str, Any]
    ) -> AuditEvent:
        fill_from_request(fields, self.user_loader, self.tenant_loader)
        return build_event(
            event_type,
            event_category=category,
            outcome=outcome,
            max_metadata_bytes=runtime.config.max_metadata_bytes,
            redact_keys=runtime.config.redact_keys,
            **fields,
        )
