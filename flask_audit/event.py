"""AuditEvent: validation, redaction and serialisation of one event. Pure: no I/O."""

from __future__ import annotations

import functools
import ipaddress
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from random import getrandbits
from typing import Any

import orjson

from .errors import AuditValidationError

#: the categories of the original design, in rising severity
CATEGORIES = ("info", "warning", "critical")
#: version of the queue entry format; a worker refuses entries of a newer major version
ENTRY_VERSION = 1
#: characters, per field; user_agent and request_id come from the client and are cut, not refused
MAX_LENGTHS = {
    "event_type": 100,
    "resource_type": 100,
    "resource_id": 255,
    "user_id": 255,
    "description": 2000,
    "user_agent": 512,
    "request_id": 128,
}
EVENT_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]+$")
REDACTED = "[REDACTED]"
FIELDS = (
    "event_id",
    "created_at",
    "event_type",
    "event_category",
    "user_id",
    "resource_type",
    "resource_id",
    "description",
    "metadata",
    "ip_address",
    "user_agent",
    "request_id",
)


#: fields a queue entry may carry besides "v", and the string fields among them
OPTIONAL_TEXT = (
    "user_id",
    "resource_type",
    "resource_id",
    "description",
    "ip_address",
    "user_agent",
    "request_id",
)


@dataclass(slots=True)
class AuditEvent:
    """One validated audit event, as stored in ``audit_logs``.

    Not frozen: a frozen dataclass sets each field through ``object.__setattr__``, which made
    building one the largest cost of decoding a batch. Treat instances as read-only.
    """

    event_id: str
    created_at: datetime
    event_type: str
    event_category: str = "info"
    user_id: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    #: metadata as validation serialised it, reused by ``to_entry``
    metadata_json: bytes | None = field(default=None, repr=False, compare=False)

    def to_row(self) -> dict[str, Any]:
        """The column values for the database."""
        return {
            "event_id": self.event_id,
            "created_at": self.created_at,
            "event_type": self.event_type,
            "event_category": self.event_category,
            "user_id": self.user_id,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "description": self.description,
            "metadata": self.metadata,
            "ip_address": self.ip_address,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
        }

    def to_entry(self) -> bytes:
        """The versioned JSON object pushed onto the queue (orjson; metadata serialised once)."""
        row = self.to_row()
        if self.metadata_json is not None:
            row["metadata"] = orjson.Fragment(self.metadata_json)
        row["v"] = ENTRY_VERSION
        return orjson.dumps(row)  # created_at: orjson writes RFC 3339, which fromisoformat reads

    @classmethod
    def from_entry(cls, raw: bytes | str) -> AuditEvent:
        """Decode a queue entry into an event; raises ``AuditValidationError`` if it is not one."""
        row = decode_entry(raw)
        row["created_at"] = datetime.fromisoformat(row["created_at"])
        return cls(**row)


def decode_entry(raw: bytes | str) -> dict[str, Any]:
    """Decode a queue entry into the column values of its row; ``created_at`` stays the ISO text
    the producer wrote. Raises ``AuditValidationError`` for anything that is not an entry.

    The producer validated the event under its own configuration; this checks the shape and the
    types, so that a bad entry is filed as failed instead of reaching the database. It is the
    drain's hottest function, hence the plain type checks.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise AuditValidationError("entry", f"is not valid JSON ({exc})") from None
    if type(data) is not dict:
        raise AuditValidationError("entry", "must be a JSON object")
    version = data.pop("v", None)
    if type(version) is not int or version > ENTRY_VERSION:
        raise AuditValidationError("v", f"entry version {version!r} is not understood")
    if not data.keys() <= FIELD_SET:
        raise AuditValidationError(sorted(set(data) - FIELD_SET)[0], "is not an audit event field")
    created_at = data.get("created_at")
    try:
        if datetime.fromisoformat(created_at).tzinfo is None:
            raise AuditValidationError("created_at", "must be timezone-aware")
    except (TypeError, ValueError):
        raise AuditValidationError("created_at", "must be an ISO 8601 timestamp") from None
    event_id = data.get("event_id")
    if type(event_id) is not str or len(event_id) != 36 or event_id.count("-") != 4:
        raise AuditValidationError("event_id", "must be a UUID")
    event_type = data.get("event_type")
    if type(event_type) is not str or not event_type or "\x00" in event_type:
        raise AuditValidationError("event_type", "is required: a non-empty string without NUL characters")
    if data.setdefault("event_category", "info") not in CATEGORIES:
        raise AuditValidationError("event_category", "must be one of info, warning, critical")
    for name in OPTIONAL_TEXT:
        value = data.get(name)
        if value is not None and (type(value) is not str or "\x00" in value):
            raise AuditValidationError(name, "must be a string without NUL characters")
    metadata = data.get("metadata")
    if metadata is not None and type(metadata) is not dict:
        raise AuditValidationError("metadata", "must be a JSON object (a dict)")
    return data


FIELD_SET = frozenset(FIELDS)


def _text(name: str, value: Any, *, cut: bool = False) -> str | None:
    if value is None:
        return None
    if type(value) is str and len(value) <= MAX_LENGTHS[name] and "\x00" not in value:
        return value  # the common case, checked in one line
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise AuditValidationError(name, "must be a string or an integer")
    text = str(value)
    if "\x00" in text:
        raise AuditValidationError(name, "must not contain NUL characters")
    limit = MAX_LENGTHS[name]
    if len(text) > limit:
        if not cut:
            raise AuditValidationError(name, f"must be at most {limit} characters")
        text = text[:limit]
    return text


@functools.lru_cache(maxsize=32)
def _sensitive(keys: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(k) for k in keys), re.IGNORECASE)


def redact(value: Any, keys: tuple[str, ...]) -> Any:
    """Replace the values of sensitive keys, at any depth, by ``[REDACTED]``.

    The same walk refuses NaN and infinities, which JSON cannot hold (orjson would write null).
    """
    return _redact(value, _sensitive(keys).search if keys else _never)


def _never(_key: str) -> None:
    return None


def _redact(value: Any, sensitive: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or value is None or kind is bool:
        return value
    if kind is dict:
        return {
            k: REDACTED if type(k) is str and sensitive(k) else _redact(v, sensitive)
            for k, v in value.items()
        }
    if kind is list or kind is tuple:
        return [_redact(v, sensitive) for v in value]
    if kind is float and (value != value or value in (_INF, -_INF)):
        raise AuditValidationError("metadata", "must be JSON-serialisable (NaN and infinity are not)")
    return value


_INF = float("inf")


def _metadata(
    value: Any, max_bytes: int, redact_keys: tuple[str, ...]
) -> tuple[dict[str, Any] | None, bytes | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise AuditValidationError("metadata", "must be a JSON object (a dict)")
    cleaned = redact(value, redact_keys)
    try:
        encoded = orjson.dumps(cleaned)
    except TypeError as exc:
        raise AuditValidationError("metadata", f"must be JSON-serialisable ({exc})") from None
    if b"\\u0000" in encoded:
        raise AuditValidationError("metadata", "must not contain NUL characters")
    if len(encoded) > max_bytes:
        raise AuditValidationError("metadata", f"must be at most {max_bytes} bytes as JSON")
    return cleaned, encoded


def _ip(value: Any) -> str | None:
    if value is None or value == "":
        return None
    normal = _normal_ip(str(value).strip())
    if normal is None:
        raise AuditValidationError("ip_address", "must be an IPv4 or IPv6 address")
    return normal


@functools.lru_cache(maxsize=4096)
def _normal_ip(text: str) -> str | None:
    """The canonical form of an address, or None; cached, since a client sends many events."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def new_event_id() -> str:
    """A version 7 UUID: 48 bits of Unix milliseconds, then random bits. Ids made later sort
    later, so the unique index on event_id grows at its right edge instead of at random pages.

    The random bits need to be unique, not secret, so they come from ``random`` (reseeded in
    every forked process), not from the kernel: a system call per event was half the cost.
    """
    value = (time.time_ns() // 1_000_000) << 80 | getrandbits(80)
    value = (value & _VERSION_MASK) | _VERSION_7
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: clears the version nibble and the two variant bits; then version 7 and variant 0b10 are set
_VERSION_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_VERSION_7 = (0x7 << 76) | (0x2 << 62)


def build_event(
    event_type: Any,
    *,
    event_id: str | None = None,
    created_at: datetime | None = None,
    event_category: Any = "info",
    user_id: Any = None,
    resource_type: Any = None,
    resource_id: Any = None,
    description: Any = None,
    metadata: Any = None,
    ip_address: Any = None,
    user_agent: Any = None,
    request_id: Any = None,
    max_metadata_bytes: int = 16384,
    redact_keys: tuple[str, ...] = (),
) -> AuditEvent:
    """Validate the fields of one event and stamp it; raises ``AuditValidationError``."""
    if not isinstance(event_type, str) or not event_type:
        raise AuditValidationError("event_type", "is required and must be a non-empty string")
    if len(event_type) > MAX_LENGTHS["event_type"]:
        raise AuditValidationError("event_type", "must be at most 100 characters")
    if not EVENT_TYPE_PATTERN.match(event_type):
        raise AuditValidationError("event_type", "may hold only letters, digits and _ . : -")
    if event_category not in CATEGORIES:
        raise AuditValidationError("event_category", "must be one of info, warning, critical")
    if created_at is None:
        created_at = datetime.now(timezone.utc)
    elif created_at.tzinfo is None:
        raise AuditValidationError("created_at", "must be timezone-aware")
    clean_metadata, metadata_json = _metadata(metadata, max_metadata_bytes, redact_keys)
    return AuditEvent(
        event_id=event_id or new_event_id(),
        created_at=created_at.astimezone(timezone.utc),
        event_type=event_type,
        event_category=event_category,
        user_id=_text("user_id", user_id),
        resource_type=_text("resource_type", resource_type),
        resource_id=_text("resource_id", resource_id),
        description=_text("description", description),
        metadata=clean_metadata,
        metadata_json=metadata_json,
        ip_address=_ip(ip_address),
        user_agent=_text("user_agent", user_agent, cut=True),
        request_id=_text("request_id", request_id, cut=True),
    )
