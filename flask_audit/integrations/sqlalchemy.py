"""Model change tracking for SQLAlchemy 2.x and Flask-SQLAlchemy (``pip install
flask-audit[sqlalchemy]``).

``audit.track(Model, exclude=[...], mask=[...])`` records ``<model>_created``, ``_updated`` and
``_deleted`` with the table as ``resource_type``, the primary key as ``resource_id`` and
``metadata.changes = {field: [before, after]}``, and the request's user, address, request id and
tenant. The records are rows of the outbox (``integrations.outbox``) inserted at flush time on
the session's own connection: they commit with the change or not at all.

``triggers=True`` (PostgreSQL) records through statement triggers on the table instead
(``integrations.triggers``, installed by ``flask audit migrate``), so that bulk
``update()``/``delete()`` and raw SQL are recorded too; the session passes the request's fields
to them with ``set_config(..., true)`` at each transaction.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from flask_audit.events.event import check_event_type
from flask_audit.events.ids import new_event_id
from flask_audit.ingest.capture import fill_from_request
from flask_audit.integrations.outbox import create_outbox, entry_json, outbox
from flask_audit.integrations.triggers import CONTEXT_FIELDS, CONTEXT_SETTING, install_trigger

if TYPE_CHECKING:
    from flask_audit.extension import FlaskAudit

#: what a masked field's values become: the change shows, the values never do
MASKED = "[MASKED]"
VERBS = ("created", "updated", "deleted")


@dataclass(frozen=True)
class TrackSpec:
    model: type
    name: str
    table: str
    exclude: frozenset[str]
    mask: frozenset[str]
    triggers: bool
    engine: sa.Engine | None = None
    #: the column attributes recorded (the excluded ones left out), and the relationships
    columns: tuple[str, ...] = ()
    relationships: tuple[Any, ...] = ()


#: every tracked model of the process -> its spec and the FlaskAudit that tracks it. One
#: listener serves them all; tracking a model again (a new app, as in a test suite) replaces the
#: earlier tracking instead of recording each change twice.
_REGISTRY: dict[type, tuple[TrackSpec, weakref.ref[FlaskAudit]]] = {}
_listening = False


@dataclass
class Tracker:
    """The models one FlaskAudit tracks: their outboxes, triggers and specs."""

    audit: FlaskAudit
    specs: dict[type, TrackSpec] = field(default_factory=dict)

    def track(
        self,
        model: type,
        *,
        exclude: tuple[str, ...] | list[str] = (),
        mask: tuple[str, ...] | list[str] = (),
        triggers: bool = False,
        name: str | None = None,
        engine: sa.Engine | None = None,
    ) -> TrackSpec:
        mapper = sa.inspect(model)
        columns = {attr.key for attr in mapper.attrs}
        unknown = sorted((set(exclude) | set(mask)) - columns)
        if unknown:
            raise ValueError(f"track({model.__name__}): {unknown[0]!r} is not an attribute of the model")
        if len(mapper.primary_key) != 1:
            raise ValueError(
                f"track({model.__name__}): only models with a one-column primary key are tracked"
            )
        name = name or _snake(model.__name__)
        for verb in VERBS:
            check_event_type(f"{name}_{verb}")
        if engine is None and getattr(model, "__fsa__", None) is None:
            raise ValueError(
                f"track({model.__name__}): pass engine= for a model that is not Flask-SQLAlchemy's"
                " (the workers relay its outbox from that database)"
            )
        spec = TrackSpec(
            model,
            name,
            mapper.local_table.name,
            frozenset(exclude),
            frozenset(mask),
            triggers,
            engine,
            tuple(a.key for a in mapper.column_attrs if a.key not in exclude),
            tuple(r for r in mapper.relationships if r.key not in exclude),
        )
        if not triggers:
            _load_old_values(model, spec)
        self.specs[model] = spec
        _REGISTRY[model] = (spec, weakref.ref(self.audit))
        _listen()
        return spec

    # -- where the outboxes are --------------------------------------------------------------

    def engines(self) -> list[sa.Engine]:
        """The databases of the tracked models (Flask-SQLAlchemy's need an app context)."""
        found: dict[int, sa.Engine] = {}
        for spec in self.specs.values():
            engine = spec.engine or _fsa_engine(spec.model)
            found[id(engine)] = engine
        return list(found.values())

    def install(self) -> list[str]:
        """Create each outbox and the triggers of the models tracked with ``triggers=True``;
        returns what was done (``flask audit migrate`` prints it)."""
        done = []
        for engine in self.engines():
            with engine.begin() as conn:
                create_outbox(conn)
                done.append(f"outbox ready in {engine.url.render_as_string(hide_password=True)}")
                for spec in self.specs.values():
                    if spec.triggers and (spec.engine or _fsa_engine(spec.model)) is engine:
                        if conn.dialect.name != "postgresql":
                            raise ValueError(f"track({spec.model.__name__}, triggers=True) needs PostgreSQL")
                        pk = sa.inspect(spec.model).primary_key[0].name
                        install_trigger(conn, spec.table, spec.name, pk, spec.exclude, spec.mask)
                        done.append(f"trigger on {spec.table}")
        return done


def _listen() -> None:
    global _listening
    if not _listening:
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "after_begin", _after_begin)
        event.listen(Session, "after_commit", _after_commit)
        _listening = True


def _tracked(obj: Any) -> tuple[TrackSpec, FlaskAudit] | None:
    found = _REGISTRY.get(type(obj))
    if found is None:
        return None
    audit = found[1]()
    return (found[0], audit) if audit is not None else None


def _after_begin(session: Session, transaction: Any, connection: sa.Connection) -> None:
    """Pass the request's fields to the triggers of this transaction (PostgreSQL)."""
    if connection.dialect.name != "postgresql":
        return
    audits = [ref() for spec, ref in _REGISTRY.values() if spec.triggers]
    audit = next((a for a in audits if a is not None), None)
    if audit is None:
        return
    fields = _request_fields(audit)
    context = {name: str(fields[name]) for name in CONTEXT_FIELDS if fields.get(name) is not None}
    connection.execute(
        sa.text("SELECT set_config(:setting, :context, true)"),
        {"setting": CONTEXT_SETTING, "context": orjson.dumps(context).decode()},
    )


def _after_flush(session: Session, flush_context: Any) -> None:
    """Each tracked change of this flush, as an outbox row on the flush's own connection."""
    found: list[tuple[Any, TrackSpec, FlaskAudit, str]] = []
    for verb, objects in (("created", session.new), ("updated", session.dirty), ("deleted", session.deleted)):
        for obj in objects:
            tracked = _tracked(obj)
            if tracked is not None and not tracked[0].triggers:
                found.append((obj, tracked[0], tracked[1], verb))
    if not found:
        return
    now = datetime.now(timezone.utc).isoformat()
    fields_of: dict[int, dict[str, Any]] = {}
    by_connection: dict[int, tuple[sa.Connection, list[dict[str, str]]]] = {}
    connections: dict[Any, sa.Connection] = {}
    for obj, spec, audit, verb in found:
        state = sa.inspect(obj)
        changes = _changes(state, spec, verb)
        if verb == "updated" and not changes:
            continue  # only excluded fields changed, or nothing did
        fields = fields_of.get(id(audit))
        if fields is None:
            fields = fields_of[id(audit)] = _request_fields(audit)
        entry = {
            "v": 1,
            "event_id": new_event_id(),
            "created_at": now,
            "event_type": f"{spec.name}_{verb}",
            "event_category": "info",
            "outcome": "success",
            "resource_type": spec.table,
            "resource_id": _key(state),
            "metadata": {"changes": changes, "via": "orm"},
            **{k: v for k, v in fields.items() if v is not None},
        }
        connection = connections.get(state.mapper)
        if connection is None:
            connection = connections[state.mapper] = session.connection(
                bind_arguments={"mapper": state.mapper}
            )
        rows = by_connection.setdefault(id(connection), (connection, []))[1]
        rows.append({"entry": entry_json(entry)})
    for connection, rows in by_connection.values():
        if rows:
            _ensure_outbox(session, connection)
            connection.execute(outbox.insert(), rows)


#: the databases (engine ids) where the outbox is known to exist: created and committed
_OUTBOX_READY: set[int] = set()


def _ensure_outbox(session: Session, connection: sa.Connection) -> None:
    """Create the outbox in this transaction if ``flask audit migrate`` did not; it counts as
    ready once a transaction that saw it commits (a rollback may take a new table with it)."""
    engine_id = id(connection.engine)
    if engine_id in _OUTBOX_READY:
        return
    create_outbox(connection)
    session.info.setdefault("flask_audit_outboxes", set()).add(engine_id)


def _after_commit(session: Session) -> None:
    _OUTBOX_READY.update(session.info.pop("flask_audit_outboxes", ()))


def _request_fields(audit: FlaskAudit) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    fill_from_request(fields, audit.user_loader, audit.tenant_loader)
    return fields


def _changes(state: Any, spec: TrackSpec, verb: str) -> dict[str, Any]:
    """{field: [before, after]} of the columns (masked ones as ``[MASKED]``), and the related
    keys of the relationships that changed."""
    changes: dict[str, Any] = {}
    mask = spec.mask
    if verb != "updated":  # every value set, from the object's own dict
        values = state.dict
        for key in spec.columns:
            value = values.get(key)
            if value is not None:
                shown = (
                    [MASKED, MASKED] if key in mask else [None, value] if verb == "created" else [value, None]
                )
                changes[key] = shown
    else:
        attrs = state.attrs
        for key in spec.columns:
            history = attrs[key].history
            if history.has_changes():
                before = history.deleted[0] if history.deleted else None
                after = history.added[0] if history.added else None
                changes[key] = [MASKED, MASKED] if key in mask else [before, after]
    if verb == "deleted":
        return changes
    for relationship in spec.relationships:
        key = relationship.key
        history = state.attrs[key].history
        if not history.has_changes():
            continue
        if relationship.uselist:
            changes[key] = {
                "added": [_related_key(o) for o in history.added],
                "removed": [_related_key(o) for o in history.deleted],
            }
        else:
            before = _related_key(history.deleted[0]) if history.deleted else _former_key(state, relationship)
            after = _related_key(history.added[0]) if history.added else None
            changes[key] = [before, after]
    return changes


def _load_old_values(model: type, spec: TrackSpec) -> None:
    """Make assigning an expired column load its old value first (SQLAlchemy's active history),
    so that ``before`` is known after a commit expired the object; not for excluded or masked
    fields, whose old values are never shown."""
    sa.orm.configure_mappers()
    manager = sa.orm.attributes.manager_of_class(model)
    for attr in sa.inspect(model).column_attrs:
        if attr.key not in spec.exclude and attr.key not in spec.mask:
            manager[attr.key].impl.active_history = True


def _former_key(state: Any, relationship: Any) -> str | None:
    """The key a many-to-one pointed at when its old object was never loaded: the old value of
    its foreign-key column."""
    columns = list(relationship.local_columns)
    if len(columns) != 1:
        return None
    history = state.attrs[state.mapper.get_property_by_column(columns[0]).key].history
    return str(history.deleted[0]) if history.deleted and history.deleted[0] is not None else None


def _key(state: Any) -> str | None:
    identity = state.identity or state.mapper.primary_key_from_instance(state.obj())
    return None if identity is None or identity[0] is None else str(identity[0])


def _related_key(obj: Any) -> Any:
    if obj is None:
        return None
    return _key(sa.inspect(obj))


def _fsa_engine(model: type) -> sa.Engine:
    extension = model.__fsa__  # type: ignore[attr-defined]
    bind_key = getattr(model, "__bind_key__", None)
    return extension.engines[bind_key]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
