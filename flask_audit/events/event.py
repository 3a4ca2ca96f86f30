"""AuditEvent: validation, redaction and serialisation of one event. Pure: no I/O."""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import field, make_dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from flask_audit.errors import AuditValidationError
from flask_audit.events import line, schema
from flask_audit.events.ids import new_event_id
from flask_audit.events.sanitize import (
    CANONICAL_IPS,
    REDACTED,
    SANITIZED_KEY,
    MetadataCleaner,
    client_ip,
    client_text,
    normal_ip,
)

__all__ = ["REDACTED", "SANITIZED_KEY", "AuditEvent", "build_event", "decode_entry", "new_event_id"]

#: the categories and outcomes an event may have (declared with the fields)
CATEGORIES, OUTCOMES = schema.CATEGORIES, schema.OUTCOMES
#: version of the queue entry format; a worker refuses entries of a newer version. Version 1 is
#: a JSON object (still read: entries of older releases, database triggers, hand-made ones),
#: version 2 one line of COPY text (``flask_audit.events.line``)
ENTRY_VERSION = line.VERSION
#: the last version written as JSON
JSON_ENTRY_VERSION = 1
EVENT_TYPE_PATTERN = re.compile(r"[A-Za-z0-9_.:\-]+")
#: the event's fields in column order, from the declaration
FIELDS = schema.NAMES
#: characters, per field; event_type is refused when longer, every other field is cut
MAX_LENGTHS = schema.MAX_LENGTHS
#: text fields a queue entry may leave out or set to null
OPTIONAL_TEXT = schema.OPTIONAL_TEXT
#: what an entry of an older release gets for a field it lacks
ENTRY_DEFAULTS = {f.name: f.default for f in schema.FIELDS if f.default is not None}


# Runs once, at import: a mutation of it can never be reached by a test (make mutation skips it);
# test_the_model_the_ddl_and_the_copy_columns_follow_the_declaration checks what it builds.
def _event_fields() -> list[tuple[str, Any, Any]]:  # pragma: no mutate block
    fields: list[tuple[str, Any, Any]] = []
    for f in schema.FIELDS:
        if f.nullable or f.default is not None:
            fields.append((f.name, Any, field(default=f.default)))
        else:
            fields.append((f.name, Any))  # type: ignore[arg-type]
    fields.append(("entry", bytes | None, field(default=None, repr=False, compare=False)))
    return fields


_row_values = operator.attrgetter(*FIELDS)


class _EventMethods:
    def to_row(self) -> dict[str, Any]:
        """The column values for the database."""
        return dict(zip(FIELDS, _row_values(self), strict=True))

    def to_entry(self) -> bytes:
        """The versioned entry pushed onto the queue, as made when the event was built."""
        if self.entry is None:
            self.entry = line.encode(self.to_row(), None)
        return self.entry

    @classmethod
    def from_entry(cls, raw: bytes | str) -> AuditEvent:
        """Decode a queue entry into an event; raises ``AuditValidationError`` if it is not one."""
        row = decode_entry(raw)
        row["created_at"] = datetime.fromisoformat(row["created_at"])
        return cls(**row)


#: One validated audit event, as stored in ``audit_logs``: a dataclass with a field per
#: declared column (see ``flask_audit.events.schema``) and ``entry``, the queue entry serialised
#: once when the event was built. Not frozen: a frozen dataclass sets each field through
#: ``object.__setattr__``, which made building one the largest cost of decoding a batch. Treat
#: instances as read-only.
AuditEvent = make_dataclass(
    "AuditEvent",
    _event_fields(),
    bases=(_EventMethods,),
    slots=True,
)
AuditEvent.__module__ = __name__


def decode_entry(raw: bytes | str) -> dict[str, Any]:
    """Decode a queue entry into the column values of its row; ``created_at`` stays the ISO text
    the producer wrote. Raises ``AuditValidationError`` for anything that is not an entry.

    The producer validated the event under its own configuration; this checks the shape and the
    types, so that a bad entry is filed as failed instead of reaching the database. A version-2
    line and a version-1 JSON object pass the same checks. On PostgreSQL the drain takes a batch
    of lines without it (``line.checked_batch``) and comes here only when that refuses the batch.
    """
    if type(raw) is str:
        raw = raw.encode()
    if raw[:2] == line.MARKER:
        data = line.parse(raw)
    else:
        announced = line.version_of(raw)
        if announced is not None:
            raise AuditValidationError("v", f"entry version {announced!r} is not understood")
        data = _json_entry(raw)
    if not data.keys() <= FIELD_SET:
        raise AuditValidationError(sorted(set(data) - FIELD_SET)[0], "is not an audit event field")
    created_at = data.get("created_at")
    try:
        moment = datetime.fromisoformat(created_at)
    except (TypeError, ValueError):
        raise AuditValidationError("created_at", "must be an ISO 8601 timestamp") from None
    if moment.tzinfo is None:  # outside the try: AuditValidationError is a ValueError too
        raise AuditValidationError("created_at", "must be timezone-aware")
    event_id = data.get("event_id")
    if type(event_id) is not str or len(event_id) != 36 or event_id.count("-") != 4:
        raise AuditValidationError("event_id", "must be a UUID")
    event_type = data.get("event_type")
    if type(event_type) is not str or not event_type or "\x00" in event_type:
        raise AuditValidationError("event_type", "is required: a non-empty string without NUL characters")
    for name, default in ENTRY_DEFAULTS.items():
        data.setdefault(name, default)
    if data["event_category"] not in CATEGORIES:
        raise AuditValidationError("event_category", "must be one of info, warning, critical")
    if data["outcome"] not in OUTCOMES:
        raise AuditValidationError("outcome", "must be one of success, failure, denied")
    get = data.get
    for name, limit in _TEXT_LIMITS:
        value = get(name)
        if value is not None:
            if type(value) is not str or "\x00" in value:
                raise AuditValidationError(name, "must be a string without NUL characters")
            if len(value) > limit:  # an entry of an older producer: cut, as it now would
                data[name] = value[:limit]
    address = data.get("ip_address")
    if address is not None and (len(address) > 39 or "%" in address):
        data["ip_address"] = normal_ip(address)  # older producers kept IPv6 zone ids
    metadata = data.get("metadata")
    if metadata is not None and type(metadata) is not dict:
        raise AuditValidationError("metadata", "must be a JSON object (a dict)")
    return data


def _json_entry(raw: bytes) -> dict[str, Any]:
    """The fields of a version-1 entry (a JSON object), its version checked and taken off."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise AuditValidationError("entry", f"is not valid JSON ({exc})") from None
    if type(data) is not dict:
        raise AuditValidationError("entry", "must be a JSON object")
    version = data.pop("v", None)
    if type(version) is not int or version > JSON_ENTRY_VERSION:
        raise AuditValidationError("v", f"entry version {version!r} is not understood")
    return data


FIELD_SET = frozenset(FIELDS)
_TEXT_LIMITS = tuple((name, MAX_LENGTHS[name]) for name in OPTIONAL_TEXT)


def _clean_metadata(value: Any, redact_keys: tuple[str, ...], altered: list[str]) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is not dict and not isinstance(value, Mapping):
        raise AuditValidationError("metadata", "must be a JSON object (a dict or other Mapping)")
    return MetadataCleaner(redact_keys, altered).clean(value)


def _encode_metadata(
    cleaned: dict[str, Any] | None, altered: list[str], max_bytes: int
) -> tuple[dict[str, Any] | None, bytes | None]:
    """The final metadata (with ``_sanitized`` when something was repaired) and its JSON, made
    once: the queue entry embeds these bytes as they are."""
    if altered:
        cleaned = {**(cleaned or {}), SANITIZED_KEY: sorted(set(altered))}
    if cleaned is None:
        return None, None
    encoded = _dumps(cleaned)
    if len(encoded) > max_bytes:
        note = f"metadata was {len(encoded)} bytes as JSON, over the limit of {max_bytes}"
        cleaned = {"_truncated": note, SANITIZED_KEY: sorted({*altered, "metadata"})}
        encoded = _dumps(cleaned)
    return cleaned, encoded


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:  # cleaning leaves nothing orjson refuses; say so if it ever does
        raise AuditValidationError("metadata", f"must be JSON-serialisable ({exc})") from None


def build_event(
    event_type: Any,
    *,
    event_id: str | None = None,
    created_at: datetime | None = None,
    event_category: Any = "info",
    outcome: Any = "success",
    metadata: Any = None,
    max_metadata_bytes: int = 16384,
    redact_keys: tuple[str, ...] = (),
    **fields: Any,
) -> AuditEvent:
    """Validate what the code chose, repair what a client may have sent, stamp the event and
    serialise it once, so that nothing downstream can fail on its content.

    ``fields`` are the declared client fields (``flask_audit.events.schema``). Raises
    ``AuditValidationError`` only for the application's own mistakes: a bad event_type or
    category, a field of the wrong type, metadata that is not a Mapping or holds objects JSON
    cannot represent; ``TypeError`` for a keyword that is not a field.
    """
    if not fields.keys() <= _CLIENT_NAMES:
        unknown = sorted(fields.keys() - _CLIENT_NAMES)[0]
        raise TypeError(f"build_event() got an unexpected keyword argument {unknown!r}")
    fields["metadata"] = metadata
    return event_from_fields(
        event_type,
        event_category,
        outcome,
        fields,
        max_metadata_bytes=max_metadata_bytes,
        redact_keys=redact_keys,
        event_id=event_id,
        created_at=created_at,
    )


def event_from_fields(
    event_type: Any,
    event_category: Any,
    outcome: Any,
    fields: dict[str, Any],
    *,
    max_metadata_bytes: int = 16384,
    redact_keys: tuple[str, ...] = (),
    event_id: str | None = None,
    created_at: datetime | None = None,
) -> AuditEvent:
    """``build_event`` for a caller that holds the client fields (and ``metadata``) in a dict
    already, which is spared unpacking and packing it again. Missing keys are None; other keys
    are not looked at."""
    row, metadata_json = _validated_row(
        event_type, event_category, outcome, fields, max_metadata_bytes, redact_keys, event_id, created_at
    )
    event = AuditEvent(**row)
    event.entry = line.encode(row, metadata_json)  # the entry is the row itself
    return event


def entry_from_fields(
    event_type: Any,
    event_category: Any,
    outcome: Any,
    fields: dict[str, Any],
    *,
    max_metadata_bytes: int = 16384,
    redact_keys: tuple[str, ...] = (),
) -> tuple[str, bytes]:
    """``event_from_fields`` for ``audit.log``, which needs only the event's id and its queue
    entry: (event_id, entry), without the ``AuditEvent`` (a twelfth of the call)."""
    row, metadata_json = _validated_row(
        event_type, event_category, outcome, fields, max_metadata_bytes, redact_keys, None, None, line.NUL
    )
    return row["event_id"], line.encode_nul(row, metadata_json)


def _validated_row(
    event_type: Any,
    event_category: Any,
    outcome: Any,
    fields: dict[str, Any],
    max_metadata_bytes: int,
    redact_keys: tuple[str, ...],
    event_id: str | None,
    created_at: datetime | None,
    null: Any = None,
) -> tuple[dict[str, Any], bytes | None]:
    """The checked and cleaned row of an event (``null`` where a field is NULL), and its
    metadata as JSON (None without)."""
    check_event_type(event_type)
    if event_category not in CATEGORIES:
        raise AuditValidationError("event_category", "must be one of info, warning, critical")
    if outcome not in OUTCOMES:
        raise AuditValidationError("outcome", "must be one of success, failure, denied")
    if created_at is None:
        created_at = datetime.now(timezone.utc)
    elif not isinstance(created_at, datetime) or created_at.tzinfo is None:
        raise AuditValidationError("created_at", "must be a timezone-aware datetime")
    else:
        created_at = created_at.astimezone(timezone.utc)
    altered: list[str] = []
    row: dict[str, Any] = {
        "event_id": event_id or new_event_id(),
        "created_at": created_at,
        "event_type": event_type,
        "event_category": event_category,
        "outcome": outcome,
    }
    get = fields.get
    for name, limit, multiline, is_ip in _CLIENT_SPECS:
        value = get(name)
        if value is None:
            row[name] = null
        elif type(value) is str and not is_ip and len(value) <= limit and value.isprintable():
            row[name] = value  # the common case, without a call
        elif is_ip and type(value) is str and value in CANONICAL_IPS:  # a known address, no call
            row[name] = value
        else:  # a repair, which may leave nothing
            repaired = (
                client_ip(value, altered)
                if is_ip
                else client_text(name, value, limit, altered, multiline=multiline)
            )
            row[name] = null if repaired is None else repaired
    metadata = get("metadata")
    if metadata is None and not altered:  # the common case: nothing to clean or to note
        row["metadata"], metadata_json = null, None
    else:
        cleaned = _clean_metadata(metadata, redact_keys, altered)
        cleaned, metadata_json = _encode_metadata(cleaned, altered, max_metadata_bytes)
        row["metadata"] = null if cleaned is None else cleaned
    return row, metadata_json


#: (name, characters kept, multi-line, an address) of each declared client text field
_CLIENT_SPECS = tuple((f.name, f.max_length, f.multiline, f.type == "ip") for f in schema.CLIENT_TEXT)
#: the keywords ``build_event`` takes for the declared client fields
_CLIENT_NAMES = frozenset(f.name for f in schema.CLIENT_TEXT)


#: event types that passed ``check_event_type`` (the application's own names, a handful), so
#: that the pattern runs once per name rather than once per event; bounded, as names could be made
#: up at run time
_checked_types: set[str] = set()
MAX_CHECKED_TYPES = 4096


def check_event_type(event_type: Any) -> None:
    """The application names its events: a non-empty identifier of at most 100 characters.
    A name that passed once is remembered (see ``_checked_types``)."""
    if type(event_type) is str and event_type in _checked_types:
        return
    if not isinstance(event_type, str) or not event_type:
        raise AuditValidationError("event_type", "is required and must be a non-empty string")
    if len(event_type) > MAX_LENGTHS["event_type"]:
        raise AuditValidationError("event_type", "must be at most 100 characters")
    if not EVENT_TYPE_PATTERN.fullmatch(event_type):
        raise AuditValidationError("event_type", "may hold only letters, digits and _ . : -")
    if len(_checked_types) < MAX_CHECKED_TYPES:
        _checked_types.add(event_type)
