"""AuditEvent: validation, redaction and serialisation of one event. Pure: no I/O."""

from __future__ import annotations

import ipaddress
import json
import re
import sys
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

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


@dataclass(frozen=True)
class AuditEvent:
    """One validated audit event, as stored in ``audit_logs``."""

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

    def to_row(self) -> dict[str, Any]:
        """The column values for the database."""
        return asdict(self)

    def to_entry(self) -> bytes:
        """The versioned JSON object pushed onto the queue."""
        row = asdict(self)
        row["created_at"] = self.created_at.isoformat()
        row["v"] = ENTRY_VERSION
        return json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_entry(cls, raw: bytes | str) -> AuditEvent:
        """Decode a queue entry. Raises ``AuditValidationError`` for anything that is not one."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AuditValidationError("entry", f"is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise AuditValidationError("entry", "must be a JSON object")
        version = data.pop("v", None)
        if not isinstance(version, int) or version > ENTRY_VERSION:
            raise AuditValidationError("v", f"entry version {version!r} is not understood")
        unknown = set(data) - set(FIELDS)
        if unknown:
            raise AuditValidationError(sorted(unknown)[0], "is not an audit event field")
        try:
            created_at = datetime.fromisoformat(data.pop("created_at"))
        except (KeyError, TypeError, ValueError):
            raise AuditValidationError("created_at", "must be an ISO 8601 timestamp") from None
        event_id = data.pop("event_id", None)
        try:
            event_id = str(uuid.UUID(event_id))
        except (TypeError, ValueError, AttributeError):
            raise AuditValidationError("event_id", "must be a UUID") from None
        # Size and redaction were enforced by the producer, under its own configuration.
        return build_event(event_id=event_id, created_at=created_at, max_metadata_bytes=sys.maxsize, **data)


def _text(name: str, value: Any, *, cut: bool = False) -> str | None:
    if value is None:
        return None
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


def redact(value: Any, keys: tuple[str, ...]) -> Any:
    """Replace the values of sensitive keys, at any depth, by ``[REDACTED]``."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and any(s in k.lower() for s in keys) else redact(v, keys)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v, keys) for v in value]
    return value


def _metadata(value: Any, max_bytes: int, redact_keys: tuple[str, ...]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AuditValidationError("metadata", "must be a JSON object (a dict)")
    cleaned = redact(value, redact_keys)
    try:
        encoded = json.dumps(cleaned, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AuditValidationError("metadata", f"must be JSON-serialisable ({exc})") from None
    if "\\u0000" in encoded:
        raise AuditValidationError("metadata", "must not contain NUL characters")
    if len(encoded.encode()) > max_bytes:
        raise AuditValidationError("metadata", f"must be at most {max_bytes} bytes as JSON")
    # Round-trip so that what is queued is exactly what the database will hold (tuples -> lists,
    # non-string keys -> strings).
    return json.loads(encoded)


def _ip(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise AuditValidationError("ip_address", "must be an IPv4 or IPv6 address") from None


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
    return AuditEvent(
        event_id=event_id or str(uuid.uuid4()),
        created_at=created_at.astimezone(timezone.utc),
        event_type=event_type,
        event_category=event_category,
        user_id=_text("user_id", user_id),
        resource_type=_text("resource_type", resource_type),
        resource_id=_text("resource_id", resource_id),
        description=_text("description", description),
        metadata=_metadata(metadata, max_metadata_bytes, redact_keys),
        ip_address=_ip(ip_address),
        user_agent=_text("user_agent", user_agent, cut=True),
        request_id=_text("request_id", request_id, cut=True),
    )
