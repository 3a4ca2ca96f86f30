"""FlaskAudit: the extension object, its request hooks, and log / critical / audited."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from flask import Flask, current_app, g, has_app_context, has_request_context, request
from werkzeug.exceptions import HTTPException

from flask_audit import safety
from flask_audit.api import api_blueprint
from flask_audit.cli import audit_cli
from flask_audit.config import load_config
from flask_audit.errors import AuditValidationError
from flask_audit.events import schema
from flask_audit.events.event import (
    CATEGORIES,
    OUTCOMES,
    AuditEvent,
    check_event_type,
    entry_from_fields,
    event_from_fields,
)
from flask_audit.ingest.capture import echo_request_id, fill_from_request
from flask_audit.integrations.flask_login import connect as connect_flask_login
from flask_audit.monitoring.routes import metrics_blueprint, monitoring_blueprint
from flask_audit.runtime import AuditRuntime
from flask_audit.viewer import tokens as viewer_tokens
from flask_audit.viewer.routes import viewer_blueprint
from flask_audit.vocabulary import EventType, Vocabulary

if TYPE_CHECKING:
    from flask_audit.integrations.sqlalchemy import Tracker, TrackSpec

F = TypeVar("F", bound=Callable[..., Any])
#: the keywords of ``log`` and ``critical`` that are declared client fields (and metadata)
CLIENT_FIELDS = tuple(f.name for f in schema.FIELDS if f.source == schema.CLIENT)


def _client_fields(scope: dict[str, Any]) -> dict[str, Any]:
    """The declared client fields among a call's arguments (``log``'s and ``critical``'s)."""
    return {name: scope[name] for name in CLIENT_FIELDS}


#: the keywords ``audited`` passes on to ``log`` (its own ``resource_id`` aside)
LOG_KEYWORDS = frozenset({*CLIENT_FIELDS, "event_category"} - {"resource_id"})


#: the methods that change something: a route that accepts one of them is audited on them only
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def outcome_of(status: int) -> str:
    """success for 2xx and 3xx, denied for 401 and 403, failure for anything else."""
    if 200 <= status < 400:
        return "success"
    return "denied" if status in (401, 403) else "failure"


def _audits(method: str, only: frozenset[str] | None) -> bool:
    """Whether ``@audited`` records this request's method."""
    if only is not None:
        return method in only
    rule = request.url_rule
    changing = CHANGING_METHODS & set(rule.methods or ()) if rule is not None else set()
    return method in changing if changing else True


@dataclass
class Annotation:
    """What a decorated view said about its own event (``audit.annotate``)."""

    outcome: str | None = None
    skip: bool = False
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


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
        #: the SQLAlchemy models whose changes are recorded (see ``track``); None until one is
        self.tracker: Tracker | None = None
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
        app.register_blueprint(viewer_blueprint(), url_prefix=config.viewer_url_prefix)
        app.extensions["audit"] = self
        if config.flask_login:
            connect_flask_login(self, app)

    def register_event_type(
        self,
        name: str,
        *,
        category: str = "info",
        description: str = "",
        resource_type: str | None = None,
        ocsf: str | None = None,
    ) -> EventType:
        """Declare an event type: its default category (used when ``log`` gets none), what it
        means, the kind of resource it concerns and its OCSF class (``"class:activity"``, for
        OCSF exports and streams). ``flask audit event-types`` lists them."""
        return self.vocabulary.register(EventType(name, category, description, resource_type, ocsf))

    def track(
        self,
        model: type,
        *,
        exclude: Iterable[str] = (),
        mask: Iterable[str] = (),
        triggers: bool = False,
        name: str | None = None,
        engine: Any = None,
    ) -> TrackSpec:
        """Record every create, update and delete of a SQLAlchemy model (``pip install
        flask-audit[sqlalchemy]``): ``<name>_created``/``_updated``/``_deleted`` with
        ``metadata.changes``, in the same transaction as the change. ``exclude`` leaves fields
        out, ``mask`` shows that they changed but not their values, ``triggers`` (PostgreSQL)
        records writes that bypass the ORM too; ``engine`` is needed unless the model is
        Flask-SQLAlchemy's."""
        from flask_audit.integrations.sqlalchemy import Tracker

        if self.tracker is None:
            self.tracker = Tracker(self)
        return self.tracker.track(
            model, exclude=tuple(exclude), mask=tuple(mask), triggers=triggers, name=name, engine=engine
        )

    def viewer_token(self, *, tenant_id: str | int | None = None, expires_in: int = 900) -> str:
        """A signed token that opens the viewer (``<prefix>/?token=...``) for ``expires_in``
        seconds (at most a day), on ``tenant_id``'s rows only, or every tenant's when None. Signed
        with AUDIT_VIEWER_SECRET, else the app's SECRET_KEY."""
        app = current_app._get_current_object() if has_app_context() else self._single_app()
        config = self.runtime(app).config
        return viewer_tokens.mint(
            app, config.viewer_secret, None if tenant_id is None else str(tenant_id), expires_in
        )

    def _single_app(self) -> Flask:
        apps = list(self._runtimes.keys())
        if len(apps) != 1:
            raise RuntimeError("viewer_token() outside an app context needs a FlaskAudit serving one app")
        return apps[0]

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
        # written out rather than _client_fields(locals()), which cost an eighth of this call (a
        # test checks that it names every declared client field)
        fields = {
            "user_id": user_id,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "description": description,
            "metadata": metadata,
            "ip_address": ip_address,
            "user_agent": user_agent,
            "request_id": request_id,
            "tenant_id": tenant_id,
        }
        runtime = self._only or self.runtime()
        config = runtime.config
        category = self.vocabulary.category_for(event_type, event_category, config.strict_event_types)
        if runtime.recorder is not None:  # testing: memory only
            event = self._build(runtime, event_type, category, outcome, fields)
            runtime.recorder.append(event)
            return event.event_id
        # _build's two steps, written out: the hottest caller is spared a call
        fill_from_request(fields, self.user_loader, self.tenant_loader)
        event_id, entry = entry_from_fields(
            event_type,
            category,
            outcome,
            fields,
            max_metadata_bytes=config.max_metadata_bytes,
            redact_keys=config.redact_keys,
        )
        try:
            runtime.submit(entry)
        except Exception as exc:  # the boundary of the request path: nothing gets past it
            safety.swallowed(exc, "audit.log")
            runtime.write_path.spool_entries([entry])
        return event_id

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
        methods: Iterable[str] | None = None,
        **fields: Any,
    ) -> Callable[[F], F]:
        """Decorate a view: record ``event_type`` with how the request ended.

        The outcome follows the response: ``success`` for 2xx and 3xx, ``denied`` for 401 and
        403, ``failure`` for any other status and when the view raises (the exception's type goes
        in ``metadata.error``; the exception is raised again). ``methods`` lists the methods
        audited; by default, a route that also accepts POST, PUT, PATCH or DELETE is audited on
        those only (a form's GET render is not the action). Inside the view,
        ``audit.annotate(...)`` sets the outcome, adds fields, or skips the event.

        ``resource_id`` names a view argument, or is a callable given the response and the
        view's arguments. Other keywords are passed to ``log``. The event_type, the category and
        the keywords are checked here, when the view is decorated, so that a mistake in them fails
        at import instead of costing every request its event. Place it below ``login_required``
        (nearer the view), so that an anonymous redirect to the login page is not the action.
        """
        check_event_type(event_type)
        unknown = sorted(set(fields) - LOG_KEYWORDS)
        if unknown:
            raise TypeError(f"audited() got an unexpected keyword argument {unknown[0]!r}")
        if fields.get("event_category", "info") not in (*CATEGORIES, None):
            raise AuditValidationError("event_category", "must be one of info, warning, critical")
        only = frozenset(m.upper() for m in methods) if methods is not None else None

        def decorate(view: F) -> F:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if not _audits(request.method, only):
                    return view(*args, **kwargs)
                note = Annotation()
                g.setdefault("_audit_annotations", []).append(note)
                try:
                    response = current_app.make_response(view(*args, **kwargs))
                except Exception as exc:
                    status = exc.code if isinstance(exc, HTTPException) and exc.code else 500
                    note.error = type(exc).__name__
                    self._record(event_type, note, status, resource_id, None, kwargs, fields)
                    raise
                finally:
                    g._audit_annotations.pop()
                self._record(event_type, note, response.status_code, resource_id, response, kwargs, fields)
                return response

            return wrapper  # type: ignore[return-value]

        return decorate

    def annotate(
        self,
        *,
        outcome: str | None = None,
        skip: bool | None = None,
        metadata: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Inside a view decorated with ``audited``: set the outcome of the event it will write
        (a form that failed validation: ``outcome="failure"``), add fields (``resource_id``,
        ``description``, ...; ``metadata`` is merged), or ``skip=True`` to write none."""
        notes = g.get("_audit_annotations") if has_request_context() else None
        if not notes:
            raise RuntimeError("audit.annotate() is for a view decorated with @audit.audited")
        unknown = sorted(set(fields) - LOG_KEYWORDS - {"resource_id"})
        if unknown:
            raise TypeError(f"annotate() got an unexpected keyword argument {unknown[0]!r}")
        if outcome is not None and outcome not in OUTCOMES:
            raise AuditValidationError("outcome", "must be one of success, failure, denied")
        note = notes[-1]
        note.outcome = outcome or note.outcome
        note.skip = note.skip if skip is None else skip
        note.metadata.update(metadata or {})
        note.fields.update(fields)

    def _record(
        self,
        event_type: str,
        note: Annotation,
        status: int,
        resource_id: str | Callable[..., Any] | None,
        response: Any,
        kwargs: dict[str, Any],
        fields: dict[str, Any],
    ) -> None:
        """Write the decorator's event; never turns the view's answer into an error."""
        if note.skip:
            return
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
            merged = {**fields, "resource_id": rid, **note.fields}
            metadata = {**(fields.get("metadata") or {}), **note.metadata}
            if note.error:
                metadata["error"] = note.error
            merged["metadata"] = metadata or None
            self.log(event_type, outcome=note.outcome or outcome_of(status), **merged)
        except Exception as exc:  # the view's answer stands: do not turn it into a 500
            safety.swallowed(exc, f"audited({event_type})")

    def _build(
        self,
        runtime: AuditRuntime,
        event_type: str,
        category: str,
        outcome: str,
        fields: dict[str, Any],
    ) -> AuditEvent:
        """The event, with the request's fields filled in (``log`` writes these two steps out
        for its queue entry, sparing the request path a call)."""
        fill_from_request(fields, self.user_loader, self.tenant_loader)
        config = runtime.config
        return event_from_fields(
            event_type,
            category,
            outcome,
            fields,
            max_metadata_bytes=config.max_metadata_bytes,
            redact_keys=config.redact_keys,
        )
